"""The generated interfaces import, and survive a round trip over real DDS between two nodes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, RegionOfInterest

from pam_ros.msg import ObjectSemantics, TrackedObject, TrackedObjectArray
from pam_ros.srv import AddObject, Describe, RemoveObject


def test_interfaces_are_generated_with_their_constants():
    assert TrackedObject.MASK_NONE == 0
    assert TrackedObject.MASK_FULL_FRAME == 1
    assert TrackedObject.MASK_CROPPED == 2
    assert Describe.Request.KIND_VIDEO_CAPTION == "video_caption"
    fields = TrackedObjectArray.get_fields_and_field_types()
    assert fields["header"] == "std_msgs/Header"
    assert fields["objects"] == "sequence<pam_ros/TrackedObject>"
    assert set(AddObject.Response.get_fields_and_field_types()) == {"success", "message", "id"}
    assert "id" in RemoveObject.Request.get_fields_and_field_types()
    object_fields = TrackedObject.get_fields_and_field_types()
    assert object_fields["position"] == "geometry_msgs/Point"
    assert object_fields["extent"] == "geometry_msgs/Vector3"
    assert object_fields["valid_depth_fraction"] == "float"
    described = Describe.Response.get_fields_and_field_types()
    assert described["position"] == "geometry_msgs/PointStamped"
    assert described["has_position"] == "boolean"


@pytest.fixture(scope="module")
def ros_context():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    nodes: list[Node] = []

    def make_node(name: str) -> Node:
        node = Node(name, context=context)
        executor.add_node(node)
        nodes.append(node)
        return node

    thread.start()
    yield make_node
    executor.shutdown()
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=5)


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _tracked_array(mask: np.ndarray) -> TrackedObjectArray:
    msg = TrackedObjectArray()
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 567
    msg.image_height, msg.image_width = mask.shape
    msg.frame_index = 42
    msg.tracking_latency = 0.125
    obj = TrackedObject(id="3", name="mug", present=True, score=7.5)
    obj.box = RegionOfInterest(x_offset=10, y_offset=20, width=30, height=40)
    obj.mask_layout = TrackedObject.MASK_FULL_FRAME
    obj.mask = Image(
        height=mask.shape[0],
        width=mask.shape[1],
        encoding="mono8",
        step=mask.shape[1],
        data=mask.tobytes(),
    )
    obj.mask.header = msg.header
    obj.mask_area = int(np.count_nonzero(mask))
    obj.semantics = ObjectSemantics(
        category="mug", function="holds hot drinks", language="en", model="PAM-1.5B", latency=0.06
    )
    obj.semantics.stamp = msg.header.stamp
    obj.has_position = True
    obj.position_frame_id = "camera_depth_optical"
    obj.position.x, obj.position.y, obj.position.z = 0.1, -0.2, 0.95
    obj.extent.x, obj.extent.y, obj.extent.z = 0.08, 0.12, 0.03
    obj.extent_center.z = 0.96
    obj.valid_depth_points = 900
    obj.valid_depth_fraction = 0.9
    absent = TrackedObject(id="4", no_position_reason="no_valid_depth: 0 of 10 mask pixels")
    msg.objects = [obj, absent]
    return msg


def test_tracked_object_array_with_mask_round_trips_over_dds(ros_context):
    publisher_node = ros_context("interfaces_test_publisher")
    subscriber_node = ros_context("interfaces_test_subscriber")
    received: list[TrackedObjectArray] = []
    subscriber_node.create_subscription(
        TrackedObjectArray, "interfaces_test/tracked_objects", received.append, 10
    )
    publisher = publisher_node.create_publisher(
        TrackedObjectArray, "interfaces_test/tracked_objects", 10
    )
    rng = np.random.default_rng(0)
    mask = (rng.random((48, 64)) > 0.5).astype(np.uint8) * 255
    sent = _tracked_array(mask)
    assert _wait_for(lambda: publisher.get_subscription_count() > 0), "no DDS discovery"
    assert _wait_for(lambda: (publisher.publish(sent), bool(received))[1], timeout=10)

    got = received[0]
    assert got.header.frame_id == "camera_optical"
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1234, 567)
    assert (got.image_width, got.image_height, got.frame_index) == (64, 48, 42)
    assert got.tracking_latency == pytest.approx(0.125)
    obj, absent = got.objects
    assert (obj.id, obj.name, obj.present) == ("3", "mug", True)
    assert obj.has_position and obj.position_frame_id == "camera_depth_optical"
    assert (obj.position.x, obj.position.y, obj.position.z) == pytest.approx((0.1, -0.2, 0.95))
    assert (obj.extent.x, obj.extent.y, obj.extent.z) == pytest.approx((0.08, 0.12, 0.03))
    assert obj.extent_center.z == pytest.approx(0.96)
    assert obj.valid_depth_points == 900 and obj.valid_depth_fraction == pytest.approx(0.9)
    assert not absent.has_position and absent.no_position_reason.startswith("no_valid_depth")
    assert obj.score == pytest.approx(7.5)
    assert (obj.box.x_offset, obj.box.y_offset, obj.box.width, obj.box.height) == (10, 20, 30, 40)
    assert obj.mask_layout == TrackedObject.MASK_FULL_FRAME
    got_mask = np.frombuffer(bytes(obj.mask.data), np.uint8).reshape(obj.mask.height, -1)
    np.testing.assert_array_equal(got_mask, mask)
    assert obj.mask_area == np.count_nonzero(mask)
    assert obj.semantics.function == "holds hot drinks"
    assert obj.semantics.latency == pytest.approx(0.06)


def test_add_object_service_round_trip(ros_context):
    server_node = ros_context("interfaces_test_server")
    client_node = ros_context("interfaces_test_client")
    seen: list[AddObject.Request] = []

    def handle(request: AddObject.Request, response: AddObject.Response):
        seen.append(request)
        response.success = True
        response.id = request.id or "generated-1"
        response.message = f"{len(request.points)} points, box={request.use_box}"
        return response

    server_node.create_service(AddObject, "interfaces_test/add_object", handle)
    client = client_node.create_client(AddObject, "interfaces_test/add_object")
    assert client.wait_for_service(timeout_sec=10.0)

    request = AddObject.Request(name="cup", use_box=True)
    request.points = [rclpy_point(100.5, 50.25), rclpy_point(3.0, 4.0)]
    request.labels = [1, 0]
    request.box = RegionOfInterest(x_offset=5, y_offset=6, width=7, height=8)
    future = client.call_async(request)
    assert _wait_for(future.done, timeout=10)
    response = future.result()
    assert response.success and response.id == "generated-1"
    assert response.message == "2 points, box=True"
    (got,) = seen
    assert [(p.x, p.y) for p in got.points] == [(100.5, 50.25), (3.0, 4.0)]
    assert list(got.labels) == [1, 0]
    assert (got.box.x_offset, got.box.width, got.name) == (5, 7, "cup")


def rclpy_point(x: float, y: float):
    from geometry_msgs.msg import Point

    return Point(x=x, y=y, z=0.0)
