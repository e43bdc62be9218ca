"""pam_ros.ros: everything that imports rclpy or a message package; a thin adapter.

The lifecycle node (`pam_node`: lifecycle, models, the tracking loop, diagnostics) over the
ROS-free `pam_ros.pipeline`; one camera's topics (`camera_io`, `image_intake`, `depth_intake`,
`detections`, `outputs_3d`); services and actions (`object_services`, `semantic_services`);
messages (`message_builders`: one builder per output, used by the node and the bag tool;
`image_conversion`); parameters (`parameters`, `reference`), the launch arguments
(`launch_description`), DDS (`dds_profile`) and rclpy plumbing (`runner`, `executor`,
`lifecycle`, `health`, `topics`); `pam_node`'s command line (`command_line`: --help, the
default params file and DDS profile) and the installed config files (`package_files`).
"""

# A node's process: one glibc malloc arena for all its threads, set before rclpy, torch or
# numpy start any (what cleanup frees then goes back to the system; pam_ros.core.memory).
from pam_ros.core.memory import limit_malloc_arenas

limit_malloc_arenas()
