"""pam_ros.testing: fixtures for tests, the demo and benchmarks, never for real use.

- `random_sam2`: seeded, informative, randomly initialised SAM 2.1 models and checkpoints in the
  official layout.
- `random_pam`: random PAM checkpoints in the official layout, with a real tokenizer.
- `scene`: ray-cast table scenes (colour, depth, intrinsics, ground truth).
"""
