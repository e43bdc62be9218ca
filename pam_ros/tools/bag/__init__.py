"""Offline tools on recorded rosbag2 files (no ROS graph): `python -m pam_ros.tools.bag`."""
