"""python -m pam_ros.bag annotate IN OUT [options]: see pam_ros.bag.cli."""

import sys

from pam_ros.bag.cli import main

sys.exit(main())
