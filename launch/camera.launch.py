"""pam_ros on a camera (or a video file): `ros2 launch pam_ros camera.launch.py camera_topic:=/x`.

    ros2 launch pam_ros camera.launch.py camera_topic:=/camera/color/image_raw
    ros2 launch pam_ros camera.launch.py video_source:=/path/clip.mp4 device:=cuda
    ros2 launch pam_ros camera.launch.py \
        params_file:=$(ros2 pkg prefix pam_ros)/share/pam_ros/config/pam_jetson.yaml

The arguments and every decision about them live in `pam_ros.ros.launch_description`
(tested without `launch`); this file only turns them into launch actions.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from pam_ros.ros.launch_description import LAUNCH_ARGUMENTS, node_specs


def _nodes(context):
    given = {arg.name: LaunchConfiguration(arg.name).perform(context) for arg in LAUNCH_ARGUMENTS}
    default_params = Path(get_package_share_directory("pam_ros")) / "config" / "pam.yaml"
    return [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace,
            parameters=spec.parameters,
            remappings=spec.remappings,
            arguments=spec.arguments,
            additional_env=spec.env,
            output="screen",
            emulate_tty=True,
        )
        for spec in node_specs(given, default_params)
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
