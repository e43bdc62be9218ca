"""describe_object over DDS: a client node's ActionClient streams, cancels and asks again."""

from __future__ import annotations

import time

from action_msgs.msg import GoalStatus
from conftest import add_request, wait_for
from rclpy.action import ActionClient
from rclpy.parameter import Parameter
from test_node_ros import (
    frames,  # noqa: F401
    harness_factory,  # noqa: F401
    node_parameters,
)

from pam_ros.action import DescribeObject


def _send(client, goal, feedback):
    sent = client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
    wait_for(sent.done, what="goal accepted")
    handle = sent.result()
    assert handle.accepted
    return handle


def test_describe_action_streams_cancels_and_answers_the_next_goal(
    harness_factory,  # noqa: F811
    checkpoints,
    frames,  # noqa: F811
):
    h = harness_factory(node_parameters(checkpoints, refresh_period_s=3600.0))
    h.wait_connected()
    client = ActionClient(h.client, DescribeObject, "describe_object")
    assert client.wait_for_server(timeout_sec=30)
    h.track(frames[0], 1_000)
    assert h.call(h.add, add_request(points=[(420, 260)], object_id="car")).success
    wait_for(lambda: h.node.scheduler.semantics("car").category, what="the first category")

    # A whole answer: feedback token by token, the result equals the Describe answer's fields.
    feedback: list = []
    handle = _send(client, DescribeObject.Goal(id="car", kind="caption"), feedback)
    done = handle.get_result_async()
    wait_for(done.done, what="caption result")
    result = done.result()
    assert result.status == GoalStatus.STATUS_SUCCEEDED and result.result.success
    text = result.result.text
    assert text and result.result.semantics.caption == text and not result.result.from_cache
    # feedback is a topic and the result a service reply: the last pieces may come after it
    wait_for(lambda: feedback and feedback[-1].text == text, what="the last feedback")
    assert len(feedback) > 3
    assert "".join(f.piece for f in feedback) == text
    assert [f.text for f in feedback] == sorted((f.text for f in feedback), key=len)

    # A long answer, cancelled after its first pieces: generation really stops.
    h.node.set_parameters([Parameter("max_new_tokens", value=3000)])
    feedback = []
    handle = _send(client, DescribeObject.Goal(id="car", kind="detailed_caption"), feedback)
    wait_for(lambda: len(feedback) >= 3, what="first pieces of the long answer")
    cancelled_at = time.monotonic()
    cancel = handle.cancel_goal_async()
    wait_for(cancel.done, what="cancel response")
    done = handle.get_result_async()
    wait_for(done.done, what="cancelled result")
    stopped_after = time.monotonic() - cancelled_at
    result = done.result()
    assert result.status == GoalStatus.STATUS_CANCELED and not result.result.success
    assert result.result.message == "cancelled"
    pieces = len(feedback)
    assert pieces < 1000, pieces  # far from the 3000-token limit
    assert h.node.scheduler.semantics("car").detailed_caption == ""  # nothing cached
    assert stopped_after < 30

    # The engine is free: the next goal is answered.
    h.node.set_parameters([Parameter("max_new_tokens", value=16)])
    feedback = []
    handle = _send(client, DescribeObject.Goal(id="car", kind="explain"), feedback)
    done = handle.get_result_async()
    wait_for(done.done, what="result after the cancel")
    assert done.result().status == GoalStatus.STATUS_SUCCEEDED
    assert done.result().result.semantics.definition

    # A bad goal is aborted with a clear message; the cache answers when fresh enough.
    handle = _send(client, DescribeObject.Goal(id="nope", kind="caption"), [])
    done = handle.get_result_async()
    wait_for(done.done, what="aborted result")
    assert done.result().status == GoalStatus.STATUS_ABORTED
    assert "unknown object id 'nope'" in done.result().result.message
    handle = _send(client, DescribeObject.Goal(id="car", kind="explain", max_age=600.0), [])
    done = handle.get_result_async()
    wait_for(done.done, what="cached result")
    assert done.result().result.from_cache
    client.destroy()
