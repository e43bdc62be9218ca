"""find_objects over DDS: a client node asks the running pam_ros node to rank its objects."""

from __future__ import annotations

from conftest import add_request, wait_for
from test_node_ros import (
    frames,  # noqa: F401
    harness_factory,  # noqa: F401
    node_parameters,
)

from pam_ros.srv import FindObjects


def test_find_objects_ranks_tracked_objects_over_dds(harness_factory, checkpoints, frames):  # noqa: F811
    h = harness_factory(node_parameters(checkpoints))
    h.wait_connected()
    find = h.client.create_client(FindObjects, "find_objects")
    stamp = 1_700_000_000_000_000_000
    h.track(frames[0], stamp)
    empty = h.call(find, FindObjects.Request(query="a car"))
    assert not empty.success and "no objects" in empty.message
    for points in ([(420, 260)], [(700, 120)], [(100, 400)]):
        assert h.call(h.add, add_request(points=points)).success
    h.track(frames[1], stamp + 33_000_000)
    wait_for(
        lambda: all(r.category for r in h.node.scheduler.all_semantics().values()),
        what="categories of the three objects",
    )

    answer = h.call(find, FindObjects.Request(query="a car", about="category"))
    assert answer.success, answer.message
    assert sorted(answer.ids) == sorted(h.node.object_ids)
    assert list(answer.scores) == sorted(answer.scores, reverse=True)
    assert len(set(answer.scores)) == 3 and all(s < 0 for s in answer.scores)  # informative
    semantics = h.node.scheduler.all_semantics()
    assert list(answer.categories) == [semantics[oid].category for oid in answer.ids]
    again = h.call(find, FindObjects.Request(query="a car"))
    assert list(again.ids) == list(answer.ids)  # stable ranking
    function = h.call(
        find, FindObjects.Request(query="carries people", about="function", ids=answer.ids[:2])
    )
    assert function.success and sorted(function.ids) == sorted(answer.ids[:2])

    for request, expected in (
        (FindObjects.Request(query=""), "empty"),
        (FindObjects.Request(query="car " * 100), "at most 64"),
        (FindObjects.Request(query="a car", ids=["nope"]), "unknown object id(s) 'nope'"),
        (FindObjects.Request(query="a car", about="colour"), "about must be"),
    ):
        reply = h.call(find, request)
        assert not reply.success and expected in reply.message, reply.message
    assert h.call(find, FindObjects.Request(query="a car")).success  # still serving
