"""Node parameters (table, validation, YAML profiles, descriptors) and the launch logic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rcl_interfaces.msg import ParameterType

from pam_ros.ros.launch_description import (
    LAUNCH_ARGUMENTS,
    LaunchArgumentError,
    node_specs,
    resolve_arguments,
)
from pam_ros.ros.parameters import (
    PARAMETER_SPECS,
    NodeParameters,
    ParameterValidationError,
    parameter_descriptor,
    validate_parameter,
)

REPO = Path(__file__).resolve().parents[1]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_every_default_is_valid_and_described():
    for spec in PARAMETER_SPECS:
        assert validate_parameter(spec.name, spec.default) == spec.default, spec.name
        assert spec.description, spec.name


@pytest.mark.parametrize("profile", ["pam.yaml", "pam_jetson.yaml"])
def test_yaml_profiles_hold_every_parameter_with_valid_values(profile):
    document = yaml.safe_load((REPO / "config" / profile).read_text())
    values = _flatten(document["/**"]["ros__parameters"])
    assert set(values) == {spec.name for spec in PARAMETER_SPECS}
    params = NodeParameters().updated(values)  # raises on any invalid value
    if profile == "pam_jetson.yaml":
        assert (params.tracker_image_size, params.tracker_model_size) == (512, "tiny")
        assert (params.device, params.dtype) == ("cuda", "bfloat16")


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("semantic_rate_hz", 0.0, "below its minimum"),
        ("semantic_rate_hz", float("nan"), "finite"),
        ("semantic_rate_hz", "fast", "must be a number"),
        ("appearance_change_threshold", 1.5, "above its maximum"),
        ("track_every_n", 2.5, "must be an integer"),
        ("track_every_n", True, "must be an integer"),
        ("tracker.model_size", "huge", "not one of tiny, small, base_plus, large"),
        ("tracker.image_size", 500, "multiple of 32"),
        ("mask_layout", "polygon", "not one of"),
        ("semantic_kinds", ["category", "poem"], "unknown kind"),
        ("semantic_kinds", "category", "list of strings"),
        ("video_caption_segment_frames", 8, "at least 16"),
        ("autostart", "yes", "true or false"),
        ("marker_frame_id", "/map", "do not start with '/'.*'map'"),
        ("tf.target_frame", "/base_link", "do not start with '/'"),
        ("tf.prefix", "/pam_object_", "do not start with '/'"),
        ("no_such_parameter", 1, "unknown parameter"),
    ],
)
def test_bad_values_are_rejected_naming_the_parameter(name, value, message):
    with pytest.raises(ParameterValidationError, match=message) as info:
        validate_parameter(name, value)
    assert name in str(info.value)


def test_updated_validates_and_leaves_the_original_alone():
    params = NodeParameters()
    faster = params.updated({"semantic_rate_hz": 2, "mask_layout": "full_frame"})
    assert faster.semantic_rate_hz == 2.0 and isinstance(faster.semantic_rate_hz, float)
    assert params.semantic_rate_hz == 1.0
    with pytest.raises(ParameterValidationError):
        params.updated({"overlay_alpha": -1.0})


def test_descriptors_carry_type_range_and_read_only():
    specs = {spec.name: spec for spec in PARAMETER_SPECS}
    rate = parameter_descriptor(specs["semantic_rate_hz"])
    assert rate.type == ParameterType.PARAMETER_DOUBLE and not rate.read_only
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) == (
        0.01,
        100.0,
    )
    every_n = parameter_descriptor(specs["track_every_n"])
    assert every_n.type == ParameterType.PARAMETER_INTEGER
    assert every_n.integer_range[0].from_value == 1
    model = parameter_descriptor(specs["tracker.model_size"])
    assert model.read_only and "large" in model.additional_constraints
    kinds = parameter_descriptor(specs["semantic_kinds"])
    assert kinds.type == ParameterType.PARAMETER_STRING_ARRAY
    # Model choices and inputs are fixed; rates and thresholds are live.
    assert {s.name for s in PARAMETER_SPECS if not s.read_only} >= {
        "semantic_rate_hz",
        "refresh_period_s",
        "appearance_change_threshold",
        "track_every_n",
        "overlay_rate_hz",
        "mask_layout",
    }


# ---- launch ------------------------------------------------------------------------------


def test_launch_arguments_are_described_and_defaults_within_choices():
    names = [argument.name for argument in LAUNCH_ARGUMENTS]
    assert len(names) == len(set(names))
    assert {
        "camera_topic",
        "use_compressed",
        "params_file",
        "namespace",
        "log_level",
        "tracker_model",
        "semantics_model",
        "device",
        "video_source",
    } <= set(names)
    for argument in LAUNCH_ARGUMENTS:
        assert argument.description
        if argument.choices is not None:
            assert argument.default in argument.choices


def test_camera_launch_remaps_the_image_topics_and_applies_overrides():
    (node,) = node_specs(
        {
            "camera_topic": "/cam/color/image_raw/",
            "tracker_model": "small",
            "device": "cuda",
            "namespace": "robot1",
            "log_level": "debug",
        },
        "/share/pam_ros/config/pam.yaml",
    )
    assert (node.package, node.executable, node.name, node.namespace) == (
        "pam_ros",
        "pam_node",
        "pam_ros",
        "robot1",
    )
    assert node.remappings == [
        ("image", "/cam/color/image_raw"),
        ("image/compressed", "/cam/color/image_raw/compressed"),
    ]
    params_file, overrides = node.parameters
    assert params_file == "/share/pam_ros/config/pam.yaml"
    assert overrides == {"use_compressed": False, "tracker.model_size": "small", "device": "cuda"}
    NodeParameters().updated(overrides)  # every override is a valid node parameter
    assert node.arguments == ["--ros-args", "--log-level", "debug"]


def test_video_source_replaces_the_camera():
    node, source = node_specs(
        {"video_source": "/data/clip.mp4", "params_file": "/my.yaml", "video_rate_hz": "30"},
        "/default.yaml",
    )
    assert node.remappings == [] and node.parameters[0] == "/my.yaml"
    assert (source.executable, source.namespace) == ("video_source", "")
    assert source.parameters == [{"source": "/data/clip.mp4", "rate_hz": 30.0, "loop": True}]
    with pytest.raises(LaunchArgumentError, match="use_compressed"):
        node_specs({"video_source": "generated", "use_compressed": "true"}, "/d.yaml")


def test_several_cameras_follow_the_realsense_layout_unless_remapped():
    (node,) = node_specs(
        {"cameras": "head, wrist", "camera_topics": "wrist:/wrist_cam/image/", "depth": "true"},
        "/d.yaml",
    )
    assert node.parameters[1]["cameras"] == ["head", "wrist"]
    NodeParameters().updated(node.parameters[1])
    assert node.remappings == [
        ("head/image", "/head/color/image_raw"),
        ("head/image/compressed", "/head/color/image_raw/compressed"),
        ("head/depth/image", "/head/aligned_depth_to_color/image_raw"),
        ("head/camera_info", "/head/aligned_depth_to_color/camera_info"),
        ("wrist/image", "/wrist_cam/image"),
        ("wrist/image/compressed", "/wrist_cam/image/compressed"),
        ("wrist/depth/image", "/wrist/aligned_depth_to_color/image_raw"),
        ("wrist/camera_info", "/wrist/aligned_depth_to_color/camera_info"),
    ]
    # a video source per camera, on that camera's topics
    node, head, wrist = node_specs({"cameras": "head,wrist", "video_source": "generated"}, "/d")
    assert node.remappings == []
    assert (head.name, wrist.name) == ("video_source_head", "video_source_wrist")
    assert ("image", "wrist/image") in wrist.remappings


@pytest.mark.parametrize(
    "given, message",
    [
        ({"cameras": "head,head"}, "more than once"),
        ({"cameras": "head,3d"}, "not camera name"),
        ({"cameras": "head", "camera_topics": "wrist:/x"}, "not one of the cameras"),
        ({"cameras": "head", "camera_topics": "/x"}, "not camera:topic"),
    ],
)
def test_bad_camera_launch_arguments_are_refused(given, message):
    with pytest.raises(LaunchArgumentError, match=message):
        node_specs(given, "/d.yaml")


@pytest.mark.parametrize(
    "given, message",
    [
        ({"camera": "/x"}, "unknown launch argument"),
        ({"device": "tpu"}, "device"),
        ({"log_level": "loud"}, "log_level"),
        ({"video_source": "generated", "video_rate_hz": "fast"}, "not a number"),
        ({"camera_topic": ""}, "camera_topic is empty"),
    ],
)
def test_bad_launch_arguments_are_refused(given, message):
    with pytest.raises(LaunchArgumentError, match=message):
        node_specs(given, "/d.yaml")


def test_resolve_fills_defaults():
    values = resolve_arguments({})
    assert values["camera_topic"] == "/camera/image_raw" and values["use_compressed"] == "false"


def test_launch_file_only_uses_the_tested_table():
    source = (REPO / "launch" / "camera.launch.py").read_text()
    assert "LAUNCH_ARGUMENTS" in source and "node_specs" in source
    compile(source, "camera.launch.py", "exec")


def test_depth_launch_arguments_remap_the_depth_topics_and_enable_3d():
    node, *_ = node_specs(
        {"depth": "true", "tf_frames": "true", "camera_topic": "/cam/color/image_raw"}, "/d.yaml"
    )
    remaps = dict(node.remappings)
    assert remaps["depth/image"] == "/camera/aligned_depth_to_color/image_raw"
    assert remaps["camera_info"] == "/camera/aligned_depth_to_color/camera_info"
    assert node.parameters[1]["depth.enabled"] is True and node.parameters[1]["tf.enabled"]
    node, source = node_specs({"depth": "true", "video_source": "generated"}, "/d.yaml")
    assert source.parameters[0]["depth"] is True and node.remappings == []
    (node,) = node_specs({}, "/d.yaml")
    assert "depth/image" not in dict(node.remappings)
    assert "depth.enabled" not in node.parameters[1]


def test_image_size_max_objects_and_rate_are_launch_arguments():
    from pam_ros.ros.launch_description import parameter_overrides, resolve_arguments

    given = {"image_size": "512", "max_objects": "4", "semantic_rate_hz": "2"}
    overrides = parameter_overrides(resolve_arguments(given))
    assert overrides["tracker.image_size"] == 512 and overrides["max_objects"] == 4
    assert overrides["semantic_rate_hz"] == 2.0 and isinstance(overrides["semantic_rate_hz"], float)
    assert "max_objects" not in parameter_overrides(resolve_arguments({}))  # params_file decides
    for bad, message in (("image_size", "multiple of 32"), ("max_objects", "not an integer")):
        with pytest.raises(LaunchArgumentError, match=message):
            parameter_overrides(resolve_arguments({bad: "500" if bad == "image_size" else "x"}))
