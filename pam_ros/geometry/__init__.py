"""3D geometry of tracked objects from an aligned depth image (no ROS, no torch).

    depth = decode_depth(raw, encoding="16UC1")            # DepthImage: raw + metres per unit
    K = CameraIntrinsics.from_k(k, width, height)           # camera_info of the depth image
    K = K.scaled_to(depth.width, depth.height)              # when camera_info has another size
    obj = estimate_object_3d(mask, depth, K, box=(x0, y0, x1, y1))
    obj.has_position, obj.position, obj.extent, obj.volume_center, obj.reason

Modules: `depth` (encodings and units), `intrinsics` (pinhole K, scaling), `object_3d`
(per-object robust position, extent and volume centre), `render` (analytic depth of planes,
boxes, cylinders and spheres, tabletop scenes with true centroids, sensor noise: for tests,
the generated demo scene and the benchmark).
"""

from pam_ros.geometry.depth import (
    DEPTH_ENCODINGS,
    DepthError,
    DepthImage,
    UnsupportedDepthEncodingError,
    decode_depth,
)
from pam_ros.geometry.intrinsics import CameraIntrinsics, IntrinsicsError
from pam_ros.geometry.object_3d import (
    NO_POSITION_REASONS,
    Estimator3DConfig,
    Object3D,
    estimate_object_3d,
    no_position,
)

__all__ = [
    "DEPTH_ENCODINGS",
    "NO_POSITION_REASONS",
    "CameraIntrinsics",
    "DepthError",
    "DepthImage",
    "Estimator3DConfig",
    "IntrinsicsError",
    "Object3D",
    "UnsupportedDepthEncodingError",
    "decode_depth",
    "estimate_object_3d",
    "no_position",
]
