"""Files the package installs to share/pam_ros/config: the installed copy, else the source tree's.

On a ROS 2 install (and after scripts/setup.sh here) the ament index knows pam_ros and its share
folder holds config/ (pam.yaml, pam_jetson.yaml, the Fast DDS profile, pam.rviz); running from a
checkout without an install tree falls back to the checkout's config/.
"""

from __future__ import annotations

from pathlib import Path

from pam_ros.core.paths import SOURCE_TREE

PACKAGE = "pam_ros"


def config_file(name: str) -> Path:
    """share/pam_ros/config/<name> where the package is installed, else <source tree>/config."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            installed = Path(get_package_share_directory(PACKAGE)) / "config" / name
            if installed.is_file():
                return installed
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    return SOURCE_TREE / "config" / name
