"""pip-installable view of pam_ros's Python code (the model libraries, the node, the demo).

A ROS 2 install builds this package with colcon through CMakeLists.txt, which also generates
the interfaces (pam_ros.msg / pam_ros.srv). This file serves `pip install -e .` for users who
want the ROS-free libraries (pam_ros.tracking, pam_ros.semantics) in another project.
"""

from setuptools import find_packages, setup

setup(
    name="pam_ros",
    version="0.1.0",
    description="Perceive Anything Model (SAM 2 tracking + PAM semantics) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["pam_ros", "pam_ros.*"]),
    install_requires=[
        "numpy>=1.26",
        "torch>=2.5",
        "sam2==1.1.0",
        "transformers>=4.45",
        "tokenizers",
        "safetensors",
        "opencv-python-headless",
        "tqdm",
    ],
    entry_points={
        "console_scripts": [
            "pam_node = pam_ros.ros.pam_node:main",
            "pam_demo = pam_ros.tools.demo.run_demo:main",
            "pam_video_source = pam_ros.tools.demo.video_source:main",
        ],
    },
)
