"""Export the SAM 2 image encoder of a checkpoint to ONNX (tracker.encoder_backend: onnxruntime).

    python -m pam_ros.tracking.export_onnx --size tiny --image-size 512 \\
        [--checkpoint sam2.1_hiera_tiny.pt] --out sam2.1_hiera_tiny_512.onnx

Writes the trunk + neck + the decoder's conv_s0/conv_s1 (everything `forward_image` gives the
tracker; see `pam_ros.tracking.onnx_encoder`) with a fixed image size and a dynamic batch,
checks it with `onnx.checker`, runs it with ONNX Runtime on a real frame (DAVIS car-shadow, or
--frame) against PyTorch and prints the largest deviation before the file is written. The
model size, image size and a fingerprint of the weights go into the ONNX metadata.
Runs on the CPU in float32 (a few seconds for tiny at 512 px, about a minute for large at 1024).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pam_ros.core.paths import DAVIS_SUBSET
from pam_ros.core.vocabulary import MODEL_SIZES

DEFAULT_FRAME = DAVIS_SUBSET / "JPEGImages/480p/car-shadow/00000.jpg"


def load_frame(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=MODEL_SIZES, default="tiny", help="SAM 2.1 model size")
    parser.add_argument("--image-size", type=int, default=1024, help="the tracker's image_size")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="SAM 2.1 checkpoint (.pt); default: the official file in the checkpoint folder "
        "(downloaded where allowed), as the tracker finds it",
    )
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--frame", type=Path, default=None, help=f"check image (default {DEFAULT_FRAME})"
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest deviation accepted (float32)"
    )
    args = parser.parse_args(argv)

    from pam_ros.tracking.config import TrackerConfig
    from pam_ros.tracking.errors import TrackerError
    from pam_ros.tracking.model_builder import build_sam2_model, resolve_checkpoint
    from pam_ros.tracking.onnx_encoder import export_encoder
    from pam_ros.tracking.preprocess import FramePreprocessor

    frame_path = args.frame or DEFAULT_FRAME
    if not frame_path.is_file():
        print(f"error: check frame {frame_path} does not exist; pass --frame", file=sys.stderr)
        return 2
    try:
        config = TrackerConfig(
            model_size=args.size, image_size=args.image_size, checkpoint=args.checkpoint
        )
        checkpoint = resolve_checkpoint(config)
        model = build_sam2_model(config)
    except (TrackerError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    image = FramePreprocessor(config.image_size, config.torch_device)(load_frame(frame_path))
    try:
        report = export_encoder(
            model,
            config,
            args.out,
            image,
            checkpoint_name=checkpoint.name,
            tolerance=args.tolerance,
        )
    except TrackerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    worst = max(report.max_abs_diff.values())
    print(
        f"wrote {report.path} (SAM 2.1-{args.size}, {args.image_size} px, weights "
        f"{report.fingerprint} from {checkpoint.name}; exported in {report.export_s:.1f} s)"
    )
    details = ", ".join(f"{name} {diff:.2e}" for name, diff in report.max_abs_diff.items())
    print(f"max deviation from PyTorch on {frame_path.name}: {worst:.2e} ({details})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
