"""Message types for reading and writing bags: a rosbags typestore with pam_ros's own types.

Output messages are built with rclpy's generated classes (the node's message builders) and
serialised with `rclpy.serialization.serialize_message` (no ROS graph needed). Each output
connection carries its full message definition and RIHS01 hash from a rosbags typestore:
ROS 2 Jazzy's standard types plus pam_ros's types read from `msg/` (the installed share folder,
or the source tree), and vision_msgs' types read from its installed share folder when there is
one. With those definitions in the MCAP file, `ros2 bag play`, rviz and Foxglove open the bag
without pam_ros being installed where it is opened.
"""

from __future__ import annotations

from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from pam_ros.core.paths import SOURCE_TREE

PAM_TYPES = (
    "pam_ros/msg/ObjectSemantics",
    "pam_ros/msg/TrackedObject",
    "pam_ros/msg/TrackedObjectArray",
)
DETECTION_ARRAY_TYPE = "vision_msgs/msg/Detection2DArray"


def package_msg_dir(package: str) -> Path | None:
    """`<share>/<package>/msg` from the ament index, or None where the package is unknown."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return None
    try:
        folder = Path(get_package_share_directory(package)) / "msg"
    except (PackageNotFoundError, ValueError):
        return None
    return folder if folder.is_dir() else None


def _types_from_folder(folder: Path, package: str) -> dict:
    types: dict = {}
    for path in sorted(folder.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    return types


def pam_msg_dir() -> Path:
    folder = package_msg_dir("pam_ros")
    if folder is not None and (folder / "TrackedObjectArray.msg").is_file():
        return folder
    return SOURCE_TREE / "msg"


def build_typestore():
    """(typestore, has_vision_msgs): Jazzy's types + pam_ros's (+ vision_msgs' where found)."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    typestore.register(_types_from_folder(pam_msg_dir(), "pam_ros"))
    vision = package_msg_dir("vision_msgs")
    has_vision = vision is not None and (vision / "Detection2DArray.msg").is_file()
    if has_vision:
        typestore.register(_types_from_folder(vision, "vision_msgs"))
    return typestore, has_vision


def connection_definition(typestore, msgtype: str) -> tuple[str, str]:
    """(message definition with its dependencies, RIHS01 hash) for an output connection."""
    msgdef, _ = typestore.generate_msgdef(msgtype, ros_version=2)
    return msgdef, typestore.hash_rihs01(msgtype)
