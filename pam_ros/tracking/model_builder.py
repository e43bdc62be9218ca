"""Build sam2's `SAM2Base` from the packaged SAM 2.1 hydra configs and load its weights.

The model is Meta's own code (`sam2==1.1.0`); this module only chooses the config, the
overrides PAM runs SAM 2 with, and where the weights come from:

- `checkpoint` given: that file (an official `sam2.1_hiera_*.pt`, weights under "model");
  missing: `CheckpointNotFoundError` naming it (never downloaded into).
- `checkpoint` None: `<checkpoint_dir>/<official file name>`, downloaded from
  `CHECKPOINT_BASE_URL` when missing and a network exists.
- offline and missing: `CheckpointNotFoundError` naming the file and the URL.
- `random_weights=True` is refused here: random models are fixtures (`pam_ros.testing`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import sam2  # noqa: F401  (initialises hydra's config search path to the sam2 package)
import torch
from hydra import compose
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sam2.modeling.sam2_base import SAM2Base

from pam_ros.tracking.config import TrackerConfig
from pam_ros.tracking.errors import CheckpointNotFoundError, TrackerConfigError

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0


def hydra_overrides(config: TrackerConfig) -> list[str]:
    """The overrides applied to sam2's SAM 2.1 config, identical for the tracker and any
    reference `SAM2VideoPredictor` built to compare with it.

    - image size, and the RoPE grid of memory attention to match it (S = image_size / 16);
    - memory sizes from the config;
    - PAM's settings: single-mask output always (no multimask on the first click), no
      dynamic fall-back to a multimask token for the returned mask, prompt-frame memory
      encoded from the binarised mask. Set explicitly so CPU and GPU builds agree (sam2's
      `apply_postprocessing` defaults depend on its optional CUDA extension).
    """
    grid = config.image_size // 16
    layer = "++model.memory_attention.layer"
    return [
        f"++model.image_size={config.image_size}",
        f"{layer}.self_attention.feat_sizes=[{grid},{grid}]",
        f"{layer}.cross_attention.feat_sizes=[{grid},{grid}]",
        f"++model.num_maskmem={config.num_maskmem}",
        f"++model.max_obj_ptrs_in_encoder={config.max_obj_ptrs}",
        "++model.multimask_output_in_sam=false",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=false",
        "++model.binarize_mask_from_pts_for_mem_enc=true",
        "++model.compile_image_encoder=false",
    ]


def instantiate_sam2(config: TrackerConfig) -> SAM2Base:
    """Instantiate the (uninitialised-weights) SAM2Base of `config` on the CPU."""
    cfg = compose(config_name=config.hydra_config, overrides=hydra_overrides(config))
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    if not isinstance(model, SAM2Base):
        raise TrackerConfigError(f"{config.hydra_config} did not build a SAM2Base")
    return model


def resolve_checkpoint(config: TrackerConfig) -> Path:
    """Return the local path of the official checkpoint, downloading it if allowed."""
    if config.checkpoint is not None:
        # an explicit path is used as given, never downloaded into: a typo must not
        # silently become a download
        path = Path(config.checkpoint).expanduser()
        if path.is_file():
            return path
        raise CheckpointNotFoundError(
            f"SAM 2.1 checkpoint {path} (TrackerConfig.checkpoint) does not exist. Check the "
            f"path, or leave checkpoint unset to use {config.checkpoint_filename} in "
            f"{config.checkpoint_dir} (downloaded from {config.checkpoint_url} where allowed)."
        )
    path = Path(config.checkpoint_dir).expanduser() / config.checkpoint_filename
    if path.is_file():
        return path
    reason = "downloads are disabled (allow_download=False)"
    if config.allow_download:
        try:
            _download(config.checkpoint_url, path)
            return path
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = f"download failed: {err}"
    raise CheckpointNotFoundError(
        f"SAM 2.1 checkpoint {config.checkpoint_filename} not found at {path} and {reason}. "
        f"Fetch it from {config.checkpoint_url} (e.g. `curl -L -o {path} "
        f"{config.checkpoint_url}`) and set TrackerConfig.checkpoint to its path, or put it "
        f"in {config.checkpoint_dir}."
    )


def _download(url: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, path)
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        # write next to the target and rename, so an interrupted download leaves no file
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as tmp:
            shutil.copyfileobj(response, tmp)
    Path(tmp.name).replace(path)


def load_checkpoint(model: SAM2Base, path: Path) -> None:
    """Load an official-layout checkpoint ({"model": state_dict}) strictly."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state:
        raise TrackerConfigError(
            f"{path} is not a SAM 2.1 checkpoint: expected a dict with the weights under "
            f"'model', got {type(state).__name__}"
        )
    # strict=False only to collect both key lists for one message; a shape mismatch still
    # raises RuntimeError here, and any missing or unexpected key is an error below.
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if missing or unexpected:
        raise TrackerConfigError(
            f"{path} does not match the configured model: missing {len(missing)} keys "
            f"(e.g. {missing[:3]}), unexpected {len(unexpected)} (e.g. {unexpected[:3]}). "
            "Check model_size, and num_maskmem (official checkpoints need 7)."
        )


def build_sam2_model(config: TrackerConfig) -> SAM2Base:
    """Build the SAM2Base of `config` with its weights, in eval mode on the config's device."""
    if config.random_weights:
        # The tracking library only loads real weights; random models are test fixtures.
        raise TrackerConfigError(
            "random_weights=True: build the model with pam_ros.testing.random_sam2 "
            "(build_random_sam2) and pass it to the tracker, or use pam_ros.pipeline.models"
        )
    path = resolve_checkpoint(config)
    model = instantiate_sam2(config)
    try:
        load_checkpoint(model, path)
    except RuntimeError as err:  # shape mismatches
        raise TrackerConfigError(
            f"{path} does not fit model_size={config.model_size!r}: {err}"
        ) from err
    if config.encoder_backend != "torch":
        # before the move: the PyTorch image encoder it replaces never reaches the device
        from pam_ros.tracking.onnx_encoder import attach_encoder_backend

        attach_encoder_backend(model, config)
    return model.to(config.torch_device).eval()
