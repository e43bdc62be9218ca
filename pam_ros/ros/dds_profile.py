"""The package's Fast DDS profile for camera-sized messages, and applying it to a process.

`config/fastdds_large_frames.xml` (installed to share/pam_ros/config/) gives a process a 32 MiB
shared-memory segment and large socket buffers; measured (bench/bench_delivery.py) it makes
best-effort rgb8 frames of 640×480 and 1280×720 arrive between two processes that BOTH use it.
Fast DDS reads it from FASTRTPS_DEFAULT_PROFILES_FILE when a process creates its first
participant (rclpy.init), so it must be in the environment before that: the launch file passes
it to the processes it starts (`dds_profile` launch argument); `pam_node` (`ros2 run`, bin/) and
the demo set it in their own os.environ before rclpy.init, which is enough - no re-exec: an
invalid XML named there after `import rclpy` is reported by Fast DDS's parser at rclpy.init,
one named after rclpy.init is never read. A profile the user has already set in the environment
(FASTRTPS_DEFAULT_PROFILES_FILE, or Fast DDS 3's FASTDDS_DEFAULT_PROFILES_FILE) always wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from pam_ros.ros.package_files import config_file

PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"  # what Fast DDS 2.x (Humble, Jazzy) reads
# Either name set by the user means "the user chose": Fast DDS 3 (Kilted on) reads the second.
USER_PROFILE_ENVS = (PROFILE_ENV, "FASTDDS_DEFAULT_PROFILES_FILE")
PROFILE_FILE = "fastdds_large_frames.xml"
NO_PROFILE = "none"  # the `dds_profile` launch argument value that keeps Fast DDS's defaults


def default_profile_path() -> Path:
    """The installed profile (share/pam_ros/config), else the one in this source tree."""
    return config_file(PROFILE_FILE)


def profile_environment(
    requested: str, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """The environment additions for a started process.

    requested: "" = the package's profile unless the environment already names one,
    "none" = Fast DDS's defaults, anything else = that XML file.
    """
    environ = os.environ if environ is None else environ
    if requested == NO_PROFILE:
        return {}
    if requested:
        if not Path(requested).expanduser().is_file():
            raise FileNotFoundError(f"dds_profile:={requested!r}: no such file")
        return {PROFILE_ENV: str(Path(requested).expanduser())}
    if user_profile(environ):
        return {}
    return {PROFILE_ENV: str(default_profile_path())}


def user_profile(environ: MutableMapping[str, str] | None = None) -> tuple[str, str] | None:
    """(variable, path) of a profile the environment already names, else None."""
    environ = os.environ if environ is None else environ
    for name in USER_PROFILE_ENVS:
        if environ.get(name):
            return name, environ[name]
    return None


def apply_profile(environ: MutableMapping[str, str] | None = None) -> str:
    """Set the package's profile for this process unless one is set; returns the one in use."""
    environ = os.environ if environ is None else environ
    environ.update(profile_environment("", environ))
    named = user_profile(environ)
    return named[1] if named else ""
