"""The demo: a frame source node, the pam_ros node and a client that prompts and asks."""
