"""pam_ros: the Perceive Anything Model (SAM 2 tracking + PAM semantics) for ROS 2.

Layers, each importing only those above it in this list:
  pam_ros.core       vocabularies, RegionFeatures, memory give-back (no ROS, no models)
  pam_ros.tracking   streaming SAM 2 tracker (torch + sam2)
  pam_ros.semantics  PAM semantic perceiver + Qwen2 LLM (torch + transformers)
  pam_ros.geometry   depth -> 3D (numpy + cv2)
  pam_ros.testing    random models and checkpoints, ray-cast scenes: fixtures
  pam_ros.pipeline   frames in -> tracked objects + semantics out; the model factory (no ROS)
  pam_ros.ros        everything that imports rclpy or messages: the lifecycle node
  pam_ros.tools      the bag tool and the demo
  pam_ros.msg/.srv   generated interfaces (the public contract), present in the colcon install
"""

__version__ = "0.1.0"

# The generated interface modules (pam_ros.msg, pam_ros.srv) live in the colcon install
# tree. When this source tree comes first on sys.path (tests, development), let Python
# find them there too.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
