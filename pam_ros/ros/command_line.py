"""`pam_node`'s command line: `--help`, the default params file and the Fast DDS profile.

    ros2 run pam_ros pam_node [-h | --help] [--ros-args [--params-file FILE] [-p NAME:=VALUE] ...]

`ros2 run pam_ros pam_node` and `bin/pam_node` start the node as `camera.launch.py` does:

- no `--params-file` given: the package's `config/pam.yaml` (the installed
  share/pam_ros/config/pam.yaml, found through the ament index; the source tree's as fallback)
  is loaded first, so `-p` values and any later `--params-file` still win;
- the package's large-frame Fast DDS profile (`pam_ros.ros.dds_profile`) is put in this
  process's environment before rclpy.init, unless the environment already names a profile.

`-h` / `--help` prints the usage and every parameter (from `PARAMETER_SPECS`) and exits 0
before any model is loaded or DDS is touched. This module imports neither rclpy nor torch.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import MutableMapping
from pathlib import Path

from pam_ros.ros.dds_profile import (
    PROFILE_ENV,
    USER_PROFILE_ENVS,
    apply_profile,
    default_profile_path,
    user_profile,
)
from pam_ros.ros.package_files import config_file
from pam_ros.ros.parameters import PARAMETER_SPECS, allowed_values
from pam_ros.ros.reference import yaml_value

HELP_FLAGS = ("-h", "--help")
DEFAULT_PARAMS_FILE = "pam.yaml"


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the program's own arguments, the ROS arguments) of argv[1:]: ROS arguments are those
    between `--ros-args` and `--` (or the end), as rcl reads them."""
    own: list[str] = []
    ros: list[str] = []
    in_ros_args = False
    for token in argv[1:]:
        if token == "--ros-args":
            in_ros_args = True
        elif token == "--" and in_ros_args:
            in_ros_args = False
        else:
            (ros if in_ros_args else own).append(token)
    return own, ros


def help_requested(argv: list[str]) -> bool:
    """`-h` / `--help` among the program's own arguments (not inside `--ros-args`)."""
    own, _ = _split(argv)
    return any(token in HELP_FLAGS for token in own)


def has_params_file(argv: list[str]) -> bool:
    _, ros = _split(argv)
    return any(token == "--params-file" or token.startswith("--params-file=") for token in ros)


def default_params_file() -> Path:
    """share/pam_ros/config/pam.yaml where pam_ros is installed, else <source tree>/config."""
    return config_file(DEFAULT_PARAMS_FILE)


def prepare(
    argv: list[str], environ: MutableMapping[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(argv with the default params file when none is given, the lines to log about it).

    Also sets the package's Fast DDS profile in `environ` (os.environ: this process, before
    rclpy.init) unless a profile is already named there.
    """
    environ = os.environ if environ is None else environ
    argv = list(argv)
    notes = []
    if not has_params_file(argv):
        path = default_params_file()
        if path.is_file():
            # First, in a section of its own: `-p` and later params files still override it.
            argv[1:1] = ["--ros-args", "--params-file", str(path), "--"]
            notes.append(
                f"parameters: {path} (the package's default params file: no --params-file given)"
            )
        else:
            notes.append(f"parameters: no --params-file and no {path}: the declared defaults")
    named = user_profile(environ)
    if named is not None:
        notes.append(f"Fast DDS profile: {named[1]} (from {named[0]} in the environment)")
    else:
        notes.append(
            f"Fast DDS profile: {apply_profile(environ)} (the package's profile for camera-sized "
            f"frames; set {PROFILE_ENV} to use another)"
        )
    return argv, notes


def usage_text(program: str = "ros2 run pam_ros pam_node") -> str:
    """The usage and every parameter: name, default, what it accepts, description."""
    lines = [
        f"usage: {program} [-h | --help] [--ros-args [--params-file FILE] "
        "[-p NAME:=VALUE ...] [-r FROM:=TO ...] [--log-level LEVEL]]",
        "",
        "The pam_ros lifecycle node: SAM 2 tracking and PAM semantics on a camera stream. It",
        "configures and activates itself (autostart) and runs until SIGINT or SIGTERM.",
        "",
        "  -h, --help        print this and exit (no model is loaded, DDS is not touched)",
        "  --params-file     a parameters YAML; without one the package's default is loaded:",
        f"                    {default_params_file()}",
        "  -p NAME:=VALUE    one parameter (wins over the params file)",
        "  -r FROM:=TO       remap a topic, e.g. -r image:=/camera/color/image_raw",
        "",
        "Fast DDS: the package's large-frame profile is used (as camera.launch.py does),",
        f"  {default_profile_path()}",
        f"unless the environment names one ({' or '.join(USER_PROFILE_ENVS)}).",
        "",
        "parameters (read-only ones are fixed once the node starts; the others can be changed",
        "with `ros2 param set /pam_ros NAME VALUE`):",
    ]
    for spec in PARAMETER_SPECS:
        kind = "read-only" if spec.read_only else "run-time"
        lines.append(f"  {spec.name}  (default: {yaml_value(spec.default)}; {kind})")
        allowed = allowed_values(spec)
        text = spec.description + ("" if allowed == "a string" else f" [{allowed}]")
        lines += textwrap.wrap(text, width=92, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def print_usage() -> None:
    """Print `usage_text()`; a closed pipe (`pam_node --help | head`) is not an error."""
    import sys

    try:
        print(usage_text(), flush=True)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # the interpreter closes it at exit
