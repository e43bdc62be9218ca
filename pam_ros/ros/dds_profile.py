"""The package's Fast DDS profile for camera-sized messages, and applying it to a process.

`config/fastdds_large_frames.xml` (installed to share/pam_ros/config/) gives a process a 32 MiB
shared-memory segment and large socket buffers; measured (bench/bench_delivery.py) it makes
best-effort rgb8 frames of 640×480 and 1280×720 arrive between two processes that BOTH use it.
Fast DDS reads it from FASTRTPS_DEFAULT_PROFILES_FILE when a process creates its participant,
so it must be in the environment before rclpy.init: the launch file passes it to the processes
it starts (`dds_profile` launch argument) and the demo sets it for itself. A profile the user
has already set in the environment always wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from pam_ros.core.paths import SOURCE_TREE

PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
PROFILE_FILE = "fastdds_large_frames.xml"
NO_PROFILE = "none"  # the `dds_profile` launch argument value that keeps Fast DDS's defaults


def default_profile_path() -> Path:
    """The installed profile (share/pam_ros/config), else the one in this source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            installed = Path(get_package_share_directory("pam_ros")) / "config" / PROFILE_FILE
            if installed.is_file():
                return installed
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return SOURCE_TREE / "config" / PROFILE_FILE


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
    if environ.get(PROFILE_ENV):
        return {}
    return {PROFILE_ENV: str(default_profile_path())}


def apply_profile(environ: MutableMapping[str, str] | None = None) -> str:
    """Set the package's profile for this process unless one is set; returns the one in use."""
    environ = os.environ if environ is None else environ
    environ.update(profile_environment("", environ))
    return environ[PROFILE_ENV]
