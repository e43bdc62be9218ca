"""The `find_objects` service: rank tracked objects by a free-text query (thin ROS adapter).

The scoring is `SemanticsScheduler.find_objects` -> `SemanticEngine.score_query` (ROS-free);
this module only turns the request into that call and the result into the response, and never
raises into the executor: every failure is answered with success=False and a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from pam_ros.node.semantics_scheduler import SchedulerError, SemanticsScheduler
from pam_ros.srv import FindObjects


class FindObjectsService:
    """Creates `find_objects` on `node`, in its own callback group.

    get_scheduler: the node's current scheduler (None when semantics are off or not loaded).
    not_ready: a reason the node cannot answer now ("pam_ros is inactive, not active"), or None.
    """

    def __init__(
        self,
        node,
        get_scheduler: Callable[[], SemanticsScheduler | None],
        not_ready: Callable[[], str | None],
    ) -> None:
        self._node = node
        self._get_scheduler = get_scheduler
        self._not_ready = not_ready
        self.service = node.create_service(
            FindObjects,
            "find_objects",
            self._on_find_objects,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )

    def _on_find_objects(self, request: FindObjects.Request, response: FindObjects.Response):
        started = time.monotonic()
        try:
            reason = self._not_ready()
            scheduler = self._get_scheduler()
            if reason is None and scheduler is None:
                reason = "semantics are disabled (semantics.enabled:=false)"
            if reason is not None:
                response.success, response.message = False, reason
                return response
            about = request.about or FindObjects.Request.ABOUT_CATEGORY
            found = scheduler.find_objects(
                request.query, about, list(request.ids), request.language or None
            )
        except SchedulerError as exc:
            response.success, response.message = False, str(exc)
            return response
        except Exception as exc:  # never into the executor
            self._node.get_logger().error(f"find_objects failed: {exc!r}")
            response.success, response.message = False, f"internal error: {exc!r}"
            return response
        response.success = True
        response.message = f"ranked {len(found)} object(s) by {about}"
        response.ids = [f.object_id for f in found]
        response.scores = [float(f.score) for f in found]
        response.categories = [f.category for f in found]
        response.latency = float(time.monotonic() - started)
        return response
