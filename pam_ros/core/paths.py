"""Where the source tree and the project's shared data are, written once.

SOURCE_TREE: the folder holding `pam_ros/`, `msg/` and `config/` when running from a checkout
    (in an install tree it is site-packages' parent folders, where those do not exist: callers
    look in the ament share folder first and fall back to this).
SHARED_DATA: `$PAM_ROS_DATA`, else `../shared/data` next to a checkout (real DAVIS frames for
    the demo, the tests and the benchmarks).
"""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("PAM_ROS_DATA", SOURCE_TREE.parent / "shared" / "data"))
DAVIS_SUBSET = SHARED_DATA / "davis2016_val_subset"
