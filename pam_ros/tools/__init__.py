"""pam_ros.tools: programs built on the node and the pipeline: `bag` (annotate recorded bags,
write camera bags) and `demo` (frame sources, the video_source node, the demo runner)."""
