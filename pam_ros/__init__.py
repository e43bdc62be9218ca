"""pam_ros: the Perceive Anything Model (SAM 2 tracking + PAM semantics) for ROS 2.

Layers:
  pam_ros.features   the data both model halves share (no ROS, no sam2)
  pam_ros.tracking   streaming SAM 2 tracker (no ROS)
  pam_ros.semantics  PAM semantic perceiver + Qwen2 LLM (no ROS)
  pam_ros.node       the ROS 2 lifecycle node: a thin adapter over the two libraries
  pam_ros.msg/.srv   generated interfaces (the public contract), present in the colcon install
"""

__version__ = "0.1.0"

# The generated interface modules (pam_ros.msg, pam_ros.srv) live in the colcon install
# tree. When this source tree comes first on sys.path (tests, development), let Python
# find them there too.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
