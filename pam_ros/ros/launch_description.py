"""What `launch/camera.launch.py` declares and how it turns arguments into nodes - without `launch`.

`launch` / `launch_ros` are not installable from PyPI, so the launch file is kept to a loop over
`LAUNCH_ARGUMENTS` and a call to `node_specs`; everything it decides (defaults, choices,
remappings, parameter overrides, whether a video source runs) lives here and is unit tested.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pam_ros.ros.dds_profile import profile_environment
from pam_ros.ros.parameters import (
    DEVICES,
    DISCOVERY_MODES,
    DTYPES,
    MODEL_SIZES,
    ParameterValidationError,
    validate_parameter,
)

PACKAGE = "pam_ros"
NODE_EXECUTABLE = "pam_node"
VIDEO_SOURCE_EXECUTABLE = "video_source"  # pam_ros.tools.demo.video_source:main
RVIZ_CONFIG = "pam.rviz"  # in share/pam_ros/config
RVIZ_TOPICS = ("overlay", "markers", "markers_3d")  # absolute (/overlay, ...) in pam.rviz
RVIZ_INSTALL = "sudo apt install ros-jazzy-rviz2"
RVIZ_MISSING = (
    f"rviz:=true but rviz2 is not installed (no rviz2 package, no rviz2 on PATH); install it "
    f"with '{RVIZ_INSTALL}' (ros-<distro>-rviz2 on other ROS 2 distributions). Starting "
    "without rviz."
)
TRUE_STRINGS = ("true", "1", "yes", "on")
BOOL_CHOICES = ("true", "false")


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


LAUNCH_ARGUMENTS: tuple[LaunchArgument, ...] = (
    LaunchArgument("namespace", "", "namespace of the pam_ros node (and of the video source)"),
    LaunchArgument(
        "camera_topic",
        "/camera/image_raw",
        "sensor_msgs/Image topic of the camera; with use_compressed the node "
        "subscribes to <camera_topic>/compressed",
    ),
    LaunchArgument(
        "cameras",
        "",
        "several cameras on one node, comma-separated names (head,wrist); each camera's image "
        "comes from camera_topics or, by default, the RealSense layout /<camera>/color/image_raw "
        "(empty: one camera on camera_topic)",
    ),
    LaunchArgument(
        "camera_topics",
        "",
        "with cameras: image topics as camera:topic pairs, comma-separated "
        "(head:/head/image_raw,wrist:/wrist/color/image_raw); cameras not named keep the "
        "RealSense layout",
    ),
    LaunchArgument(
        "use_compressed", "false", "subscribe to the CompressedImage topic", BOOL_CHOICES
    ),
    LaunchArgument("params_file", "", "parameters YAML (empty: the package's config/pam.yaml)"),
    LaunchArgument(
        "log_level", "info", "log level of the nodes", ("debug", "info", "warn", "error", "fatal")
    ),
    LaunchArgument(
        "tracker_model", "", "SAM 2.1 variant (empty: from params_file)", ("", *MODEL_SIZES)
    ),
    LaunchArgument("tracker_checkpoint", "", "SAM 2.1 checkpoint .pt (empty: from params_file)"),
    LaunchArgument("semantics_model", "", "PAM checkpoint folder (empty: from params_file)"),
    LaunchArgument("device", "", "torch device (empty: from params_file)", ("", *DEVICES)),
    LaunchArgument("dtype", "", "model dtype (empty: from params_file)", ("", *DTYPES)),
    LaunchArgument(
        "image_size", "", "tracker.image_size, SAM 2 input pixels (empty: from params_file)"
    ),
    LaunchArgument("max_objects", "", "most objects tracked at once (empty: from params_file)"),
    LaunchArgument(
        "semantic_rate_hz", "", "perceiver-LLM calls per second (empty: from params_file)"
    ),
    LaunchArgument(
        "discovery_mode",
        "",
        "discovery.mode: find objects without prompts (empty: from params_file)",
        ("", *DISCOVERY_MODES),
    ),
    LaunchArgument(
        "video_source",
        "",
        "a video file, image folder or 'generated' to publish instead of a camera "
        "(empty: use camera_topic)",
    ),
    LaunchArgument("video_rate_hz", "15.0", "frame rate of the video source"),
    LaunchArgument("video_loop", "true", "restart the video at its end", BOOL_CHOICES),
    LaunchArgument("use_sim_time", "false", "use /clock", BOOL_CHOICES),
    LaunchArgument(
        "depth",
        "false",
        "pair an aligned depth image + camera_info with the colour for 3D positions "
        "(the video source publishes the generated scene's depth)",
        BOOL_CHOICES,
    ),
    LaunchArgument(
        "depth_topic",
        "/camera/aligned_depth_to_color/image_raw",
        "sensor_msgs/Image depth aligned to camera_topic (16UC1 mm or 32FC1 m)",
    ),
    LaunchArgument(
        "camera_info_topic",
        "/camera/aligned_depth_to_color/camera_info",
        "sensor_msgs/CameraInfo of the depth image",
    ),
    LaunchArgument(
        "depth_topics",
        "",
        "with cameras and depth: depth topics as camera:topic pairs; default "
        "/<camera>/aligned_depth_to_color/image_raw",
    ),
    LaunchArgument(
        "camera_info_topics",
        "",
        "with cameras and depth: camera_info topics as camera:topic pairs; default "
        "/<camera>/aligned_depth_to_color/camera_info",
    ),
    LaunchArgument("tf_frames", "false", "broadcast a TF frame per located object", BOOL_CHOICES),
    LaunchArgument(
        "dds_profile",
        "",
        "Fast DDS XML profile for the started processes (FASTRTPS_DEFAULT_PROFILES_FILE); "
        "empty: the package's config/fastdds_large_frames.xml unless the environment sets one, "
        "'none': Fast DDS defaults",
    ),
    LaunchArgument(
        "rviz",
        "false",
        "also start rviz2 with the package's config/pam.rviz (overlay, markers, markers_3d, "
        "TF; remapped to namespace and the first camera); where rviz2 is not installed one line "
        "says so and how to install it, and the rest starts",
        BOOL_CHOICES,
    ),
    LaunchArgument(
        "rviz_fixed_frame",
        "",
        "with rviz: rviz's fixed frame, the camera's frame_id (e.g. camera_color_optical_frame; "
        "empty: pam.rviz's 'camera', the video source's frame)",
    ),
)
ARGUMENTS_BY_NAME = {argument.name: argument for argument in LAUNCH_ARGUMENTS}


class LaunchArgumentError(ValueError):
    """An unknown launch argument or a value outside its choices."""


@dataclass(frozen=True)
class NodeSpec:
    """Everything launch_ros.actions.Node needs."""

    package: str  # "": `executable` is a path (rviz2)
    executable: str
    name: str  # "": the executable's own node name
    namespace: str
    parameters: list = field(default_factory=list)  # YAML paths and dicts, in order
    remappings: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to the process's environment


def _is_true(value: str) -> bool:
    return value.strip().lower() in TRUE_STRINGS


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise LaunchArgumentError(f"{name}:={value!r} is not a number") from None
    if not number > 0:
        raise LaunchArgumentError(f"{name}:={value!r} must be > 0")
    return number


def resolve_arguments(given: dict[str, str]) -> dict[str, str]:
    """Defaults filled in, unknown names and values outside choices rejected."""
    unknown = sorted(set(given) - set(ARGUMENTS_BY_NAME))
    if unknown:
        raise LaunchArgumentError(f"unknown launch argument(s) {unknown}")
    values = {argument.name: argument.default for argument in LAUNCH_ARGUMENTS}
    values.update(given)
    for name, value in values.items():
        choices = ARGUMENTS_BY_NAME[name].choices
        if choices is not None and value not in choices:
            raise LaunchArgumentError(
                f"{name}:={value!r} is not one of {[c for c in choices if c]}"
            )
    return values


def _typed_value(argument: str, parameter: str, value: str, convert) -> object:
    """A launch argument's text as the parameter's type, validated like the node does."""
    try:
        typed = convert(value)
    except ValueError:
        kind = "an integer" if convert is int else "a number"
        raise LaunchArgumentError(f"{argument}:={value!r} is not {kind}") from None
    try:
        return validate_parameter(parameter, typed)
    except ParameterValidationError as exc:
        raise LaunchArgumentError(f"{argument}:={value!r}: {exc}") from None


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """Node parameters set by launch arguments (applied after the params file)."""
    overrides: dict[str, object] = {"use_compressed": _is_true(values["use_compressed"])}
    for argument, parameter in (
        ("tracker_model", "tracker.model_size"),
        ("tracker_checkpoint", "tracker.checkpoint"),
        ("semantics_model", "semantics.model_path"),
        ("device", "device"),
        ("dtype", "dtype"),
        ("discovery_mode", "discovery.mode"),
    ):
        if values[argument]:
            overrides[parameter] = values[argument]
    for argument, parameter, convert in (
        ("image_size", "tracker.image_size", int),
        ("max_objects", "max_objects", int),
        ("semantic_rate_hz", "semantic_rate_hz", float),
    ):
        if values[argument]:
            overrides[parameter] = _typed_value(argument, parameter, values[argument], convert)
    if _is_true(values["use_sim_time"]):
        overrides["use_sim_time"] = True
    if _is_true(values["depth"]):
        overrides["depth.enabled"] = True
    if _is_true(values["tf_frames"]):
        overrides["tf.enabled"] = True
    return overrides


def camera_list(values: dict[str, str]) -> list[str]:
    """The `cameras` argument as node parameter values ([] : one unnamed camera)."""
    from pam_ros.ros.parameters import camera_names

    names = [name.strip() for name in values["cameras"].split(",") if name.strip()]
    try:
        names = camera_names(names)
    except ParameterValidationError as exc:
        raise LaunchArgumentError(f"cameras:={values['cameras']!r}: {exc}") from None
    return [] if names == [""] else names


def _topic_pairs(argument: str, text: str, cameras: list[str]) -> dict[str, str]:
    """`head:/a/b,wrist:/c` -> {"head": "/a/b", "wrist": "/c"}, every name a camera."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, separator, topic = item.partition(":")
        if not separator or not topic.strip():
            raise LaunchArgumentError(f"{argument}: {item!r} is not camera:topic")
        if name.strip() not in cameras:
            raise LaunchArgumentError(
                f"{argument}: {name.strip()!r} is not one of the cameras {cameras}"
            )
        pairs[name.strip()] = topic.strip().rstrip("/")
    return pairs


def camera_remappings(values: dict[str, str], cameras: list[str]) -> list[tuple[str, str]]:
    """Named cameras: `<camera>/image` (+ compressed, depth) to the camera's topics, by
    default the RealSense layout (`/<camera>/color/image_raw`, aligned depth, its info)."""
    if values["video_source"]:  # the sources publish on the cameras' own topics
        return []
    images = _topic_pairs("camera_topics", values["camera_topics"], cameras)
    depths = _topic_pairs("depth_topics", values["depth_topics"], cameras)
    infos = _topic_pairs("camera_info_topics", values["camera_info_topics"], cameras)
    remappings = []
    for name in cameras:
        image = images.get(name, f"/{name}/color/image_raw")
        remappings += [
            (f"{name}/image", image),
            (f"{name}/image/compressed", f"{image}/compressed"),
        ]
        if _is_true(values["depth"]):
            aligned = f"/{name}/aligned_depth_to_color"
            remappings += [
                (f"{name}/depth/image", depths.get(name, f"{aligned}/image_raw")),
                (f"{name}/camera_info", infos.get(name, f"{aligned}/camera_info")),
            ]
    return remappings


def image_remappings(values: dict[str, str]) -> list[tuple[str, str]]:
    """The node subscribes to relative `image` / `image/compressed`: point them at the camera.

    With a video source, the source publishes on the node's own (relative) `image`, so no
    remapping is needed.
    """
    if values["video_source"]:
        return []
    camera = values["camera_topic"].rstrip("/")
    if not camera:
        raise LaunchArgumentError("camera_topic is empty")
    remappings = [("image", camera), ("image/compressed", f"{camera}/compressed")]
    if _is_true(values["depth"]):
        remappings += [
            ("depth/image", values["depth_topic"]),
            ("camera_info", values["camera_info_topic"]),
        ]
    return remappings


def node_specs(given: dict[str, str], default_params_file: str | Path) -> list[NodeSpec]:
    """The nodes camera.launch.py starts for the launch arguments `given`."""
    values = resolve_arguments(given)
    cameras = camera_list(values)
    params_file = values["params_file"] or str(default_params_file)
    log_arguments = ["--ros-args", "--log-level", values["log_level"]]
    dds_env = profile_environment(values["dds_profile"])
    specs = [
        NodeSpec(
            package=PACKAGE,
            executable=NODE_EXECUTABLE,
            name="pam_ros",
            namespace=values["namespace"],
            parameters=[
                params_file,
                parameter_overrides(values) | ({"cameras": cameras} if cameras else {}),
            ],
            remappings=(
                camera_remappings(values, cameras) if cameras else image_remappings(values)
            ),
            arguments=log_arguments,
            env=dds_env,
        )
    ]
    if values["video_source"]:
        if _is_true(values["use_compressed"]):
            raise LaunchArgumentError(
                "the video source publishes raw images: use_compressed:=false"
            )
        source_parameters = {
            "source": values["video_source"],
            "rate_hz": _positive_float("video_rate_hz", values["video_rate_hz"]),
            "loop": _is_true(values["video_loop"]),
        } | ({"depth": True} if _is_true(values["depth"]) else {})
        # one source per named camera, on the camera's own topics (the same clip)
        for camera in cameras or [""]:
            specs.append(
                NodeSpec(
                    package=PACKAGE,
                    executable=VIDEO_SOURCE_EXECUTABLE,
                    name=f"video_source_{camera}" if camera else "video_source",
                    namespace=values["namespace"],
                    parameters=[source_parameters],
                    remappings=[
                        (topic, f"{camera}/{topic}")
                        for topic in ("image", "depth/image", "camera_info")
                    ]
                    if camera
                    else [],
                    arguments=log_arguments,
                    env=dds_env,
                )
            )
    return specs


def find_rviz2() -> str | None:
    """rviz2's executable: the rviz2 package's lib/rviz2/rviz2 (ament index), else `rviz2` on
    PATH; None where it is not installed."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix

        try:
            executable = Path(get_package_prefix("rviz2")) / "lib" / "rviz2" / "rviz2"
            if executable.is_file():
                return str(executable)
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return shutil.which("rviz2")


def rviz_remappings(values: dict[str, str]) -> list[tuple[str, str]]:
    """pam.rviz's absolute topics (/overlay, ...) to the node's: under the namespace and the
    first named camera (rviz shows one camera; pick another in its Displays panel)."""
    cameras = camera_list(values)
    prefix = "/".join(filter(None, (values["namespace"].strip("/"), *cameras[:1])))
    if not prefix:
        return []
    return [(f"/{topic}", f"/{prefix}/{topic}") for topic in RVIZ_TOPICS]


def rviz_spec(
    given: dict[str, str], rviz_config: str | Path, executable: str | None
) -> NodeSpec | None:
    """The rviz2 process for `rviz:=true` (None: not asked for, or `executable` None: rviz2 is
    not installed, see `rviz_missing`)."""
    values = resolve_arguments(given)
    if not _is_true(values["rviz"]) or executable is None:
        return None
    arguments = ["-d", str(rviz_config)]
    if values["rviz_fixed_frame"]:
        arguments += ["-f", values["rviz_fixed_frame"]]
    return NodeSpec(
        package="",
        executable=executable,
        name="",  # rviz2's own node name
        namespace="",
        remappings=rviz_remappings(values),
        arguments=arguments,
        env=profile_environment(values["dds_profile"]),
    )


def rviz_missing(given: dict[str, str], executable: str | None) -> str | None:
    """The one line to log when rviz was asked for and rviz2 is not installed."""
    return RVIZ_MISSING if _is_true(resolve_arguments(given)["rviz"]) and not executable else None
