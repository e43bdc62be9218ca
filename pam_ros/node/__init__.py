"""The pam_ros ROS 2 node: a thin adapter between ROS topics/services and the two model layers.

ROS-free helpers (tested on their own): image_conversion, parameters, latest_frame,
semantics_scheduler, overlay, launch_description. ROS-facing: message_builders, pam_node.
"""
