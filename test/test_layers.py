"""The house plan, checked: which layer may import which (docs/architecture.md).

Every module's imports are read from its syntax tree (also imports inside functions), so a lazy
import cannot hide a dependency. ROS-free layers may not import rclpy or any message package,
and no layer may import one that stands above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "pam_ros"

# Bottom to top: a layer may import only the layers before it (and itself).
INTERFACES = {"msg", "srv", "action"}  # generated from msg/ srv/ action/: the public contract
LAYERS = ["core", "tracking", "semantics", "geometry", "testing", "pipeline", "ros", "tools"]
ALLOWED = {
    "core": {"core"},
    "tracking": {"core", "tracking"},
    "semantics": {"core", "semantics"},
    "geometry": {"core", "geometry"},
    "testing": {"core", "tracking", "semantics", "geometry", "testing"},
    "pipeline": {"core", "tracking", "semantics", "geometry", "testing", "pipeline"},
    "ros": {"core", "tracking", "semantics", "geometry", "testing", "pipeline", "ros"} | INTERFACES,
    "tools": set(LAYERS) | INTERFACES,
}
ROS_FREE = ["core", "tracking", "semantics", "geometry", "testing", "pipeline"]
ROS_MODULES = ("rclpy", "rosidl", "launch", "launch_ros", "message_filters", "cv_bridge", "tf2")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            # `from pam_ros import msg` imports pam_ros.msg
            names.update(f"{module}.{alias.name}" for alias in node.names if module == "pam_ros")
    return names


def is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return (
        top in ROS_MODULES
        or top.endswith("_msgs")
        or top.endswith("_srvs")
        or top == "builtin_interfaces"
        or module.startswith(("pam_ros.msg", "pam_ros.srv", "pam_ros.action"))
    )


def modules_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    stray = [
        p.relative_to(REPO).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.parent != PACKAGE and p.relative_to(PACKAGE).parts[0] not in LAYERS
    ]
    top_level = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not stray and not top_level, (stray, top_level)


@pytest.mark.parametrize("layer", ROS_FREE)
def test_ros_free_layers_import_no_ros(layer):
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(m for m in imported_modules(path) if is_ros(m))
        for path in modules_of(layer)
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_one_image_path_everywhere_no_cv_bridge():
    """Image decoding has one tested path on every install (pam_ros/ros/image_conversion.py
    says why cv_bridge is not used): no module imports it, whether or not it is installed."""
    users = [
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(m.split(".")[0] == "cv_bridge" for m in imported_modules(path))
    ]
    assert not users


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_imports_one_above_it(layer):
    offenders = {}
    for path in modules_of(layer):
        upward = sorted(
            m
            for m in imported_modules(path)
            if m.startswith("pam_ros.") and m.split(".")[1] not in ALLOWED[layer]
        )
        if upward:
            offenders[path.relative_to(REPO).as_posix()] = upward
    assert not offenders, f"{layer} may import only {sorted(ALLOWED[layer])}: {offenders}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The rule can fail: a lazy rclpy import and a relative upward import are both found."""
    module = REPO / "pam_ros" / "core" / "_layer_probe.py"
    module.write_text("def f():\n    import rclpy\n    from ..ros import pam_node\n")
    try:
        names = imported_modules(module)
        assert "rclpy" in names and "pam_ros.ros" in names
        assert is_ros("rclpy") and is_ros("sensor_msgs.msg")
    finally:
        module.unlink()
