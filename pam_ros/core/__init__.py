"""pam_ros.core: what every layer shares, with no ROS and no models.

- `features`: RegionFeatures, what the tracker hands the semantic engine.
- `vocabulary`: the names written once (model sizes, dtypes, description kinds, languages) and
  the rules shared by layers (the 16-frame video sampling, stamps in nanoseconds).
- `memory`: giving freed model memory back to the system (gc, CUDA cache, the C heap).
"""
