"""pam_ros on a camera (or a video file): `ros2 launch pam_ros camera.launch.py camera_topic:=/x`.

    ros2 launch pam_ros camera.launch.py camera_topic:=/camera/color/image_raw
    ros2 launch pam_ros camera.launch.py video_source:=/path/clip.mp4 device:=cuda
    ros2 launch pam_ros camera.launch.py \
        params_file:=$(ros2 pkg prefix pam_ros)/share/pam_ros/config/pam_jetson.yaml
    ros2 launch pam_ros camera.launch.py video_source:=generated rviz:=true

The arguments and every decision about them live in `pam_ros.ros.launch_description`
(tested without `launch`); this file only turns them into launch actions.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from pam_ros.ros.launch_description import (
    LAUNCH_ARGUMENTS,
    RVIZ_CONFIG,
    find_rviz2,
    node_specs,
    rviz_missing,
    rviz_spec,
)


def _nodes(context):
    given = {arg.name: LaunchConfiguration(arg.name).perform(context) for arg in LAUNCH_ARGUMENTS}
    config = Path(get_package_share_directory("pam_ros")) / "config"
    specs = node_specs(given, config / "pam.yaml")
    rviz2 = find_rviz2()
    rviz = rviz_spec(given, config / RVIZ_CONFIG, rviz2)
    missing = rviz_missing(given, rviz2)  # rviz asked for, not installed: one line, no rviz
    actions = [LogInfo(msg=missing)] if missing else []
    return actions + [
        Node(
            package=spec.package or None,  # None: the executable is a path
            executable=spec.executable,
            name=spec.name or None,
            namespace=spec.namespace,
            parameters=spec.parameters,
            remappings=spec.remappings,
            arguments=spec.arguments,
            additional_env=spec.env,
            output="screen",
            emulate_tty=True,
        )
        for spec in specs + ([rviz] if rviz else [])
    ]


def generate_launch_description():
    declared = [
        DeclareLaunchArgument(
            arg.name,
            default_value=arg.default,
            description=arg.description,
            **({"choices": list(arg.choices)} if arg.choices else {}),
        )
        for arg in LAUNCH_ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
