"""Seeded, informative, randomly initialised SAM 2.1 models for tests and benchmarks.

No pretrained SAM 2 weights can be fetched on the development machines, so tests run the
real architecture with random weights. Default init makes a poor test model: the
object-score head usually calls every object absent (every mask empty), and a few
parameters start at exactly zero (Hiera's position embeddings, LayerNorm biases), which
hides whole code paths. `build_random_sam2` therefore

1. seeds torch and builds the model from the same hydra config as a real one;
2. gives every all-zero parameter small random values (N(0, 0.02));
3. adds a bias to the last layer of the object-score MLP: +4 (OBJECT_SCORE_PRESENT, the
   default) scores every prompted object present, so masks carry information; -4
   (OBJECT_SCORE_ABSENT) scores every object absent. Tests assert both ways: a present
   model's objects are present with masks neither empty nor full, an absent model's objects
   are absent with empty masks, no detection, no position and no marker. Code that ignored
   the score (always present, or present from the mask alone) fails the second kind.

Why not a model that tells present from absent by itself: with random weights the object-score
token barely depends on the image. A linear read-out calibrated on textured vs uniform frames
was tried: it separates the calibration frames, but real DAVIS frames land on either side of
it (and one grey level on the "present" side), so the bias is fixed per model instead and a
test that needs an object to vanish mid-stream shifts the score on those frames itself
(`test_tracking_parity.py`).

`write_random_checkpoint` saves such a model in the official checkpoint layout
({"model": state_dict}) so that anything loading `sam2.1_hiera_*.pt` (the tracker, sam2's
own `build_sam2_video_predictor`) can load it.

    python -m pam_ros.testing.random_sam2 --size tiny --image-size 256 \
        --out /tmp/sam2.1_hiera_tiny.pt
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from sam2.modeling.sam2_base import SAM2Base

from pam_ros.tracking.config import MODEL_SIZES, TrackerConfig

ZERO_PARAM_STD = 0.02
OBJECT_SCORE_PRESENT = 4.0
OBJECT_SCORE_ABSENT = -4.0


@torch.no_grad()
def make_informative(
    model: SAM2Base, generator: torch.Generator, object_score_bias: float = OBJECT_SCORE_PRESENT
) -> None:
    """Steps 2 and 3 of the module docstring, in place."""
    for param in model.parameters():
        if not param.any():
            param.copy_(torch.randn(param.shape, generator=generator) * ZERO_PARAM_STD)
    score_head = model.sam_mask_decoder.pred_obj_score_head
    last = score_head.layers[-1] if hasattr(score_head, "layers") else score_head
    last.bias.add_(object_score_bias)


def build_random_sam2(
    config: TrackerConfig, object_score_bias: float = OBJECT_SCORE_PRESENT
) -> SAM2Base:
    """A SAM2Base of `config`'s size with seeded, informative random weights (on CPU);
    `object_score_bias`: OBJECT_SCORE_PRESENT or OBJECT_SCORE_ABSENT (module docstring)."""
    from pam_ros.tracking.model_builder import instantiate_sam2

    torch_rng_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(config.seed)
        model = instantiate_sam2(config)
    finally:
        torch.random.set_rng_state(torch_rng_state)
    generator = torch.Generator().manual_seed(config.seed + 1)
    make_informative(model, generator, object_score_bias)
    return model.eval()


def random_sam2_on_device(config: TrackerConfig) -> SAM2Base:
    """`build_random_sam2(config)` on the config's device: pass it to a tracker, e.g.
    `StreamingTracker(random_sam2_on_device(config), config)`."""
    return build_random_sam2(config).to(config.torch_device).eval()


def write_random_checkpoint(
    config: TrackerConfig, out: str | Path, object_score_bias: float = OBJECT_SCORE_PRESENT
) -> Path:
    """Write `build_random_sam2(config, object_score_bias)` to `out` as {"model": state_dict}."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = build_random_sam2(replace(config, random_weights=True), object_score_bias)
    torch.save({"model": model.state_dict()}, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=MODEL_SIZES, default="tiny")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output .pt path")
    parser.add_argument(
        "--absent", action="store_true", help="score every object absent (default: present)"
    )
    args = parser.parse_args(argv)
    config = TrackerConfig(
        model_size=args.size, image_size=args.image_size, seed=args.seed, random_weights=True
    )
    bias = OBJECT_SCORE_ABSENT if args.absent else OBJECT_SCORE_PRESENT
    path = write_random_checkpoint(config, args.out, bias)
    scored = "absent" if args.absent else "present"
    print(f"wrote random SAM 2.1-{args.size} weights (seed {args.seed}, scored {scored}) to {path}")


if __name__ == "__main__":
    main()
