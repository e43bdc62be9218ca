"""python -m pam_ros.tools.bag annotate IN OUT [options]: see pam_ros.tools.bag.cli."""

import sys

from pam_ros.tools.bag.cli import main

sys.exit(main())
