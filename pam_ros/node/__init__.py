"""The pam_ros ROS 2 node: a thin adapter between ROS topics/services and the model layers.

ROS-free helpers (tested on their own): image_conversion, parameters, latest_frame,
semantics_scheduler, overlay, launch_description, topics. ROS-facing: pam_node (lifecycle,
models, tracking loop, diagnostics), camera_io (one camera's topics), object_services and
semantic_services (services, actions, prompts), image_intake, depth_intake, outputs_3d,
detections, message_builders, runner, lifecycle, health, executor.
"""
