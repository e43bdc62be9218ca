"""Every parameter of the pam_ros node: declaration, validation and a plain dataclass view.

One table (`PARAMETER_SPECS`) describes each parameter once: its default, description, range or
choices and whether it may change at run time. The node declares them all from the table with a
`ParameterDescriptor`, validates every value (at start and on `ros2 param set`), and hands the
rest of the code a `NodeParameters` dataclass instead of loose lookups.

Model choices, topics and QoS are read-only (they take effect on configure); rates, thresholds
and presentation settings may be changed while the node runs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pam_ros.core.vocabulary import (
    DTYPES,
    ENCODER_BACKENDS,
    LANGUAGES,
    MODEL_SIZES,
    ONNX_PROVIDERS,
)
from pam_ros.core.vocabulary import ENGINE_MAX_BATCH_SIZE as MAX_BATCH_SIZE_LIMIT
from pam_ros.core.vocabulary import IMAGE_KINDS as SEMANTIC_KINDS
from pam_ros.ros.image_conversion import DEFAULT_MAX_IMAGE_PIXELS

DEVICES = ("cpu", "cuda", "auto")
MASK_LAYOUTS = ("full_frame", "cropped", "none")
RELIABILITIES = ("auto", "best_effort", "reliable")
OVERLAY_ENCODINGS = ("rgb8", "bgr8")
DISCOVERY_MODES = ("off", "on_request", "periodic")


class ParameterValidationError(ValueError):
    """A parameter value outside its range or choices; the message names the parameter."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str  # ROS name, dotted for groups ("tracker.model_size")
    default: Any
    description: str
    minimum: float | int | None = None  # inclusive
    maximum: float | int | None = None  # inclusive
    choices: tuple[str, ...] | None = None
    read_only: bool = False  # True: fixed once declared (model choices, topics, QoS)

    @property
    def field_name(self) -> str:
        return self.name.replace(".", "_")


PARAMETER_SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "autostart",
        True,
        "configure and activate on start (false: wait for a lifecycle manager)",
        read_only=True,
    ),
    # --- models (read-only: they are loaded on configure) ---
    ParameterSpec(
        "tracker.model_size",
        "large",
        "SAM 2.1 variant (PAM's perceiver was trained on SAM 2.1-large features at 1024 px)",
        choices=MODEL_SIZES,
        read_only=True,
    ),
    ParameterSpec(
        "tracker.checkpoint",
        "",
        "SAM 2.1 checkpoint (.pt, {'model': state_dict}); "
        "empty: the default download location of tracker.model_size",
        read_only=True,
    ),
    ParameterSpec(
        "tracker.image_size",
        1024,
        "SAM 2 input resolution in pixels (multiple of 32)",
        minimum=64,
        maximum=2048,
        read_only=True,
    ),
    ParameterSpec(
        "tracker.num_maskmem",
        7,
        "SAM 2 memory frames (prompt frame + recent frames); official weights need 7",
        minimum=1,
        maximum=7,
        read_only=True,
    ),
    ParameterSpec(
        "tracker.max_obj_ptrs",
        16,
        "SAM 2 object pointers kept in memory",
        minimum=1,
        maximum=64,
        read_only=True,
    ),
    ParameterSpec(
        "tracker.allow_download",
        True,
        "download a missing official SAM 2.1 checkpoint where a network exists",
        read_only=True,
    ),
    ParameterSpec(
        "tracker.resize",
        "pil",
        "frame resampling to the model input: pil = sam2's loader exactly (PIL uint8 bicubic, "
        "on the device), float = torch float bicubic",
        choices=("pil", "float"),
        read_only=True,
    ),
    ParameterSpec(
        "tracker.encoder_backend",
        "torch",
        "who runs the SAM 2 image encoder: torch, or onnxruntime (tracker.onnx_path, exported "
        "with python -m pam_ros.tracking.export_onnx; TensorRT on a Jetson)",
        choices=ENCODER_BACKENDS,
        read_only=True,
    ),
    ParameterSpec(
        "tracker.onnx_path",
        "",
        "the exported image encoder (.onnx) for encoder_backend onnxruntime; its model size, "
        "image size and weights must be the tracker's",
        read_only=True,
    ),
    ParameterSpec(
        "tracker.onnx_providers",
        list(ONNX_PROVIDERS),
        "ONNX Runtime execution providers, tried in order (those missing from the installed "
        "onnxruntime are skipped; GPU ones on a CPU device too)",
        read_only=True,
    ),
    ParameterSpec(
        "tracker.onnx_trt_cache_dir",
        "",
        "TensorRT engine and timing cache folder (TensorRT builds its engine once, not on every "
        "start); empty: no cache",
        read_only=True,
    ),
    ParameterSpec(
        "tracker.onnx_trt_fp16",
        False,
        "let TensorRT build fp16 kernels for the image encoder",
        read_only=True,
    ),
    ParameterSpec(
        "tracker.random_weights",
        False,
        "TESTING ONLY: random SAM 2 weights, masks are meaningless",
        read_only=True,
    ),
    ParameterSpec(
        "semantics.enabled",
        True,
        "run the PAM perceiver-LLM (false: tracking only)",
        read_only=True,
    ),
    ParameterSpec(
        "semantics.model_path",
        "Perceive-Anything/PAM-1.5B",
        "PAM checkpoint folder, or a Hugging Face id downloaded on first use where a network "
        "exists",
        read_only=True,
    ),
    ParameterSpec(
        "device",
        "auto",
        "torch device for both models; auto: cuda when available",
        choices=DEVICES,
        read_only=True,
    ),
    ParameterSpec(
        "dtype",
        "auto",
        "model dtype; auto: bfloat16 on CUDA devices that compute it, else float32",
        choices=DTYPES,
        read_only=True,
    ),
    ParameterSpec(
        "compile",
        False,
        "torch.compile the models with dynamic shapes, warmed up on configure (slow configure)",
        read_only=True,
    ),
    # --- input (read-only: subscriptions are made on activate from these) ---
    ParameterSpec(
        "cameras",
        [""],
        "camera names: each has its topics under its name (<camera>/image, "
        "<camera>/tracked_objects, ...) and object ids naming it (<camera>/1); [''] (default): "
        "one unnamed camera on image, tracked_objects, ...",
        read_only=True,
    ),
    ParameterSpec(
        "camera_timeout_s",
        5.0,
        "a camera without a frame for this long is reported in /diagnostics (WARN) and the log",
        minimum=0.1,
        maximum=3600.0,
    ),
    ParameterSpec(
        "use_compressed",
        False,
        "subscribe to image/compressed (CompressedImage) instead of image (Image)",
        read_only=True,
    ),
    ParameterSpec(
        "qos.reliability",
        "auto",
        "image subscription reliability; auto: follow the camera's publishers (reliable when "
        "all are reliable, else best_effort), re-checked when publishers appear",
        choices=RELIABILITIES,
        read_only=True,
    ),
    ParameterSpec(
        "qos.depth",
        1,
        "image subscription queue depth (the node keeps only the latest frame anyway)",
        minimum=1,
        maximum=100,
        read_only=True,
    ),
    ParameterSpec(
        "max_image_pixels",
        DEFAULT_MAX_IMAGE_PIXELS,
        "frames with more pixels are rejected (compressed ones from their header, before decoding)",
        minimum=1,
        maximum=100_000_000,
    ),
    ParameterSpec("max_objects", 16, "most objects tracked at once", minimum=1, maximum=256),
    # --- tracking ---
    ParameterSpec(
        "track_every_n",
        1,
        "track every n-th received frame (1: every frame)",
        minimum=1,
        maximum=1000,
    ),
    # --- semantics scheduling ---
    ParameterSpec(
        "semantic_rate_hz",
        1.0,
        "perceiver-LLM calls per second (throttle)",
        minimum=0.01,
        maximum=100.0,
    ),
    ParameterSpec(
        "refresh_period_s",
        10.0,
        "re-describe an object after this many seconds",
        minimum=0.1,
        maximum=86400.0,
    ),
    ParameterSpec(
        "appearance_change_threshold",
        0.5,
        "re-describe an object when 1 - IoU of its mask vs the last described mask exceeds this",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "video_caption_segment_frames",
        32,
        "tracked frames per streaming video caption segment (0: no video captions)",
        minimum=0,
        maximum=10000,
    ),
    ParameterSpec(
        "semantic_kinds",
        ["category", "explain"],
        f"descriptions kept fresh automatically, any of {', '.join(SEMANTIC_KINDS)} "
        "([]: none, descriptions only when asked through describe / describe_object)",
    ),
    ParameterSpec("language", "en", "default description language", choices=LANGUAGES),
    ParameterSpec(
        "max_new_tokens",
        0,
        "longest generated description, in tokens (0: the engine's default for each kind)",
        minimum=0,
        maximum=4096,
    ),
    ParameterSpec(
        "max_batch_size",
        8,
        "most description requests per perceiver-LLM call: one call serves several objects "
        "(an object's kinds are never split; Describe requests go first)",
        minimum=1,
        maximum=MAX_BATCH_SIZE_LIMIT,
    ),
    # --- depth / 3D (read-only: subscriptions are made on activate from these) ---
    ParameterSpec(
        "depth.enabled",
        False,
        "subscribe to depth/image + camera_info (aligned to the colour image) for 3D positions",
        read_only=True,
    ),
    ParameterSpec(
        "depth.slop_s",
        0.02,
        "most seconds between stamps paired: depth with camera_info, depth with colour",
        minimum=0.0,
        maximum=10.0,
        read_only=True,
    ),
    ParameterSpec(
        "depth.metres_per_unit",
        0.0,
        "depth units override (0: from the encoding, 16UC1 mm, 32FC1 m; e.g. 0.0001)",
        minimum=0.0,
        maximum=1000.0,
        read_only=True,
    ),
    ParameterSpec(
        "depth.erosion_px",
        3,
        "mask erosion (depth pixels) before the position median",
        minimum=0,
        maximum=50,
        read_only=True,
    ),
    ParameterSpec(
        "depth.max_m",
        20.0,
        "depth beyond this is invalid (metres)",
        minimum=0.1,
        maximum=1000.0,
        read_only=True,
    ),
    ParameterSpec(
        "tf.enabled",
        False,
        "broadcast a TF frame <tf.prefix><id> per located object",
        read_only=True,
    ),
    ParameterSpec("tf.prefix", "pam_object_", "TF child frame prefix", read_only=True),
    ParameterSpec(
        "tf.target_frame",
        "",
        "express detections_3d and markers_3d in this frame when TF knows it (e.g. base_link)",
        read_only=True,
    ),
    # --- discovery: objects found without prompts (per camera) ---
    ParameterSpec(
        "discovery.mode",
        "off",
        "off: no discovery; on_request: a pass when the discover service or find_objects "
        "(discover: true) asks; periodic: also one pass every discovery.period_s per camera",
        choices=DISCOVERY_MODES,
    ),
    ParameterSpec(
        "discovery.period_s",
        5.0,
        "seconds between periodic passes on a camera (and how recent a pass lets "
        "find_objects skip its own)",
        minimum=0.5,
        maximum=3600.0,
    ),
    ParameterSpec(
        "discovery.points_per_side",
        16,
        "grid of clicks per pass: points_per_side^2 (cost grows with it)",
        minimum=2,
        maximum=64,
    ),
    ParameterSpec(
        "discovery.pred_iou_thresh",
        0.8,
        "keep masks whose predicted IoU (SAM 2's quality estimate) is above this",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "discovery.stability_score_thresh",
        0.95,
        "keep masks whose stability score is above this",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "discovery.stability_score_offset",
        1.0,
        "logit offset of the stability score (IoU of the mask cut at +- this)",
        minimum=0.0,
        maximum=10.0,
    ),
    ParameterSpec(
        "discovery.box_nms_thresh",
        0.7,
        "of two masks whose boxes overlap by more than this IoU the weaker is dropped",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "discovery.min_area_fraction",
        0.001,
        "drop masks smaller than this fraction of the image",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "discovery.max_area_fraction",
        0.5,
        "drop masks larger than this fraction of the image (table tops, walls)",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "discovery.max_overlap_with_tracked",
        0.3,
        "drop masks whose area lies more than this fraction on objects already tracked",
        minimum=0.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "discovery.max_new_per_pass",
        5,
        "add at most this many objects per pass (best first; never beyond max_objects)",
        minimum=1,
        maximum=256,
    ),
    # --- outputs ---
    ParameterSpec(
        "mask_layout",
        "cropped",
        "masks in tracked_objects: full_frame, cropped to the box, or none",
        choices=MASK_LAYOUTS,
    ),
    ParameterSpec(
        "overlay_rate_hz", 5.0, "overlay image rate (0: no overlay)", minimum=0.0, maximum=100.0
    ),
    ParameterSpec("overlay_encoding", "rgb8", "overlay image encoding", choices=OVERLAY_ENCODINGS),
    ParameterSpec("overlay_alpha", 0.5, "mask opacity in the overlay", minimum=0.0, maximum=1.0),
    ParameterSpec("marker_frame_id", "", "frame of the rviz markers (empty: the image's frame_id)"),
    ParameterSpec(
        "marker_pixel_scale", 0.001, "marker metres per image pixel", minimum=1e-6, maximum=1.0
    ),
    ParameterSpec(
        "memory_trim_period_s",
        30.0,
        "give freed C heap back to the system this often while tracking (glibc malloc_trim; "
        "keeps RSS flat on endless streams); 0: never",
        minimum=0.0,
        maximum=3600.0,
    ),
    ParameterSpec(
        "diagnostics_period_s",
        1.0,
        "seconds between /diagnostics messages",
        minimum=0.1,
        maximum=3600.0,
    ),
)

SPECS_BY_NAME: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETER_SPECS}


def _updated(self, values: dict[str, Any]):
    """A copy with `values` (ROS names) applied, every value validated first."""
    changes = {}
    for name, value in values.items():
        spec = SPECS_BY_NAME.get(name)
        if spec is None:
            raise ParameterValidationError(f"unknown parameter {name!r}")
        changes[spec.field_name] = validate_parameter(name, value)
    return dataclasses.replace(self, **changes)


def _parameters_class():
    """NodeParameters, derived from PARAMETER_SPECS: one field per spec (ROS name with '.' →
    '_'), its type and default the spec's. The specs are the one copy of every parameter."""
    fields = []
    for spec in PARAMETER_SPECS:
        default = spec.default
        if isinstance(default, list):  # a fresh list per instance
            value = field(default_factory=lambda d=tuple(default): list(d))
        else:
            value = field(default=default)
        fields.append((spec.field_name, type(default), value))
    return dataclasses.make_dataclass(
        "NodeParameters",
        fields,
        namespace={
            "updated": _updated,
            "__doc__": "Plain view of the node's parameters (field = ROS name with '.' → '_'), "
            "built from PARAMETER_SPECS; `updated(values)` validates and applies ROS names.",
            "__module__": __name__,
        },
    )


NodeParameters = _parameters_class()


def allowed_values(spec: ParameterSpec) -> str:
    """What `spec` accepts, in words ("an integer from 1 to 256", "one of en, zh")."""
    default = spec.default
    if isinstance(default, bool):
        return "true or false"
    if spec.choices is not None:
        return "one of " + ", ".join(repr(c) if not c else c for c in spec.choices)
    if isinstance(default, list):
        return "a list of strings"
    if isinstance(default, str):
        return "a string"
    kind = "an integer" if isinstance(default, int) else "a number (integers accepted)"
    if spec.minimum is not None and spec.maximum is not None:
        return f"{kind} from {spec.minimum} to {spec.maximum}"
    return kind


def validate_parameter(name: str, value: Any) -> Any:
    """Check one value against its spec; returns it normalised (int → float for float specs).

    Every error names the parameter, the value and what is allowed.
    """
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        raise ParameterValidationError(f"unknown parameter {name!r}")
    allowed = f"(allowed: {allowed_values(spec)})"
    default = spec.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterValidationError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterValidationError(f"{name} must be an integer, got {value!r} {allowed}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterValidationError(f"{name} must be a number, got {value!r} {allowed}")
        value = float(value)
        if not math.isfinite(value):
            raise ParameterValidationError(f"{name} must be finite, got {value!r} {allowed}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ParameterValidationError(f"{name} must be a string, got {value!r}")
    elif isinstance(default, list):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise ParameterValidationError(f"{name} must be a list of strings, got {value!r}")
        value = list(value)
    if spec.minimum is not None and value < spec.minimum:
        raise ParameterValidationError(
            f"{name}={value} is below its minimum {spec.minimum} {allowed}"
        )
    if spec.maximum is not None and value > spec.maximum:
        raise ParameterValidationError(
            f"{name}={value} is above its maximum {spec.maximum} {allowed}"
        )
    if name == "language":
        value = value.strip().lower()  # language codes are case-insensitive: "EN" is "en"
    if spec.choices is not None and value not in spec.choices:
        raise ParameterValidationError(f"{name}={value!r} is not one of {', '.join(spec.choices)}")
    if name == "tracker.image_size" and value % 32:
        raise ParameterValidationError(f"tracker.image_size={value} is not a multiple of 32")
    if name == "semantic_kinds":
        unknown = [kind for kind in value if kind not in SEMANTIC_KINDS]
        if unknown:
            raise ParameterValidationError(
                f"semantic_kinds: unknown kind(s) {unknown}; use {', '.join(SEMANTIC_KINDS)}"
            )
    if name == "cameras":
        value = camera_names(value)
    if name in FRAME_ID_PARAMETERS and value.startswith("/"):
        raise ParameterValidationError(
            f"{name}={value!r}: tf2 frame ids do not start with '/' (use {value.lstrip('/')!r})"
        )
    if name == "video_caption_segment_frames" and 0 < value < 16:
        raise ParameterValidationError(
            f"video_caption_segment_frames={value}: a segment needs at least 16 frames (or 0)"
        )
    return value


FRAME_ID_PARAMETERS = ("marker_frame_id", "tf.target_frame", "tf.prefix")
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def camera_names(names: list[str]) -> list[str]:
    """The `cameras` value checked: distinct ROS name tokens ("head", "wrist_left"); [] and
    [''] are the one unnamed camera (['']). Raises ParameterValidationError."""
    names = [name.strip() for name in names]
    if names in ([], [""]):
        return [""]
    bad = [name for name in names if not CAMERA_NAME.match(name)]
    if bad:
        raise ParameterValidationError(
            f"cameras: {bad} not camera name(s): a letter, then letters, digits or '_' "
            "(the unnamed camera '' only alone)"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParameterValidationError(f"cameras: {repeated} given more than once")
    return names


def parameter_descriptor(spec: ParameterSpec):
    """The rcl_interfaces ParameterDescriptor that declares `spec`."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    default = spec.default
    if isinstance(default, bool):
        descriptor.type = ParameterType.PARAMETER_BOOL
    elif isinstance(default, int):
        descriptor.type = ParameterType.PARAMETER_INTEGER
        if spec.minimum is not None:
            descriptor.integer_range = [
                IntegerRange(from_value=int(spec.minimum), to_value=int(spec.maximum), step=0)
            ]
    elif isinstance(default, float):
        descriptor.type = ParameterType.PARAMETER_DOUBLE
        if spec.minimum is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0
                )
            ]
    elif isinstance(default, list):
        descriptor.type = ParameterType.PARAMETER_STRING_ARRAY
    else:
        descriptor.type = ParameterType.PARAMETER_STRING
    if spec.choices is not None:
        descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
    return descriptor


def command_line_parameters(argv: list[str]) -> dict[str, Any]:
    """`-p name:=value` / `--param name:=value` of the ROS arguments in `argv`, YAML-parsed.

    rcl merges these with `--params-file` values, and where the types differ it keeps the
    file's value without a word; reading them here lets the node check what the user typed.
    """
    import yaml

    values: dict[str, Any] = {}
    in_ros_args = False
    tokens = iter(argv)
    for token in tokens:
        if token == "--ros-args":
            in_ros_args = True
        elif token == "--":
            in_ros_args = False
        elif in_ros_args and token in ("-p", "--param"):
            assignment = next(tokens, "")
            name, separator, raw = assignment.partition(":=")
            if not separator or name not in SPECS_BY_NAME:
                continue
            try:
                values[name] = yaml.safe_load(raw) if raw else ""
            except yaml.YAMLError:
                values[name] = raw
            if values[name] is None:  # `-p name:=` or `~`
                values[name] = raw
    return values


def _parameter_type(spec: ParameterSpec):
    from rclpy.parameter import Parameter

    default = spec.default
    if isinstance(default, bool):
        return Parameter.Type.BOOL
    if isinstance(default, int):
        return Parameter.Type.INTEGER
    if isinstance(default, float):
        return Parameter.Type.DOUBLE
    if isinstance(default, list):
        return Parameter.Type.STRING_ARRAY
    return Parameter.Type.STRING


def check_overrides(node, command_line: dict[str, Any] | None = None) -> None:
    """Validate every start value (params files, `-p`, launch) before it is declared.

    `command_line` (from `command_line_parameters`) wins over the merged overrides, as the
    user asked. Each bad value is one line of the ParameterValidationError raised; good values
    are written back normalised (2 → 2.0 for a double) so the typed declaration accepts them.
    """
    from rclpy.parameter import Parameter

    overrides = getattr(node, "_parameter_overrides", None)
    if overrides is None:  # an rclpy without it: the typed declaration still refuses
        return
    given = {name: p.value for name, p in overrides.items() if name in SPECS_BY_NAME}
    given.update(command_line or {})
    errors = []
    for name, value in given.items():
        try:
            normalised = validate_parameter(name, value)
        except ParameterValidationError as exc:
            errors.append(str(exc))
            continue
        overrides[name] = Parameter(name, _parameter_type(SPECS_BY_NAME[name]), normalised)
    if errors:
        raise ParameterValidationError("\n".join(errors))


def declare_parameters(node, command_line: dict[str, Any] | None = None) -> NodeParameters:
    """Declare every spec on `node` (overrides from YAML / the command line apply) and validate.

    Raises ParameterValidationError with one line per bad value.
    """
    check_overrides(node, command_line)
    values = {}
    for spec in PARAMETER_SPECS:
        parameter = node.declare_parameter(spec.name, spec.default, parameter_descriptor(spec))
        values[spec.name] = parameter.value
    return NodeParameters().updated(values)


def integers_as_doubles(parameters: list) -> list:
    """rclpy pre-set callback: an integer given for a double parameter becomes that double.

    At start an integer override of a double parameter is accepted (`semantic_rate_hz:=2`);
    at run time rclpy would refuse `ros2 param set /pam_ros semantic_rate_hz 2` as a type
    change. Converting before rclpy's type check makes both behave the same.
    """
    from rclpy.parameter import Parameter

    converted = []
    for parameter in parameters:
        spec = SPECS_BY_NAME.get(parameter.name)
        if (
            spec is not None
            and isinstance(spec.default, float)
            and parameter.type_ == Parameter.Type.INTEGER
        ):
            parameter = Parameter(parameter.name, Parameter.Type.DOUBLE, float(parameter.value))
        converted.append(parameter)
    return converted
