"""The `find_objects` service and the `describe_object` action (thin ROS adapters).

The scoring is `SemanticsScheduler.find_objects` -> `SemanticEngine.score_query` (ROS-free);
this module only turns the request into that call and the result into the response, and never
raises into the executor: every failure is answered with success=False and a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from pam_ros.pipeline.semantics_scheduler import SchedulerError, SemanticsScheduler
from pam_ros.srv import FindObjects


class FindObjectsService:
    """Creates `find_objects` on `node`, in its own callback group.

    get_scheduler: the node's current scheduler (None when semantics are off or not loaded).
    not_ready: a reason the node cannot answer now ("pam_ros is inactive, not active"), or None.
    discover: runs a discovery pass where one is due, returns the ids it added (raises
        NodeNotActiveError-like RuntimeErrors or ValueErrors with a reason).
    locate: object id -> (has_position, position, volume_center, extent, no_position_reason)
        (`pam_ros.ros.outputs_3d.located`).
    """

    def __init__(
        self,
        node,
        get_scheduler: Callable[[], SemanticsScheduler | None],
        not_ready: Callable[[], str | None],
        discover: Callable[[], list[str]] | None = None,
        locate: Callable[[str], tuple] | None = None,
    ) -> None:
        self._node = node
        self._get_scheduler = get_scheduler
        self._not_ready = not_ready
        self._discover = discover
        self._locate = locate
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
            discovered = []
            if request.discover and self._discover is not None:
                discovered = self._discover()  # before ranking: new objects are ranked too
            found = scheduler.find_objects(
                request.query, about, list(request.ids), request.language or None
            )
        except (SchedulerError, ValueError, RuntimeError) as exc:
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
        response.discovered_ids = discovered
        if discovered:
            response.message += f" (discovery added {len(discovered)})"
        if self._locate is not None:
            for f in found:
                has, position, volume_center, _, reason = self._locate(f.object_id)
                response.has_position.append(has)
                response.positions.append(position)
                response.volume_centers.append(volume_center)
                response.no_position_reasons.append(reason)
        response.latency = float(time.monotonic() - started)
        return response


class DescribeObjectAction:
    """The `describe_object` action (pam_ros/action/DescribeObject): Describe as a long
    operation. Feedback carries the text as it is decoded; a cancel stops generation at the
    next token and frees the engine; the result is the Describe service's answer.

    Goals and cancels run in one reentrant callback group of their own, so a cancel is heard
    while a goal is generating (the node's executor is multi-threaded).
    """

    def __init__(
        self,
        node,
        get_scheduler: Callable[[], SemanticsScheduler | None],
        not_ready: Callable[[], str | None],
    ) -> None:
        from rclpy.action import ActionServer, CancelResponse
        from rclpy.callback_groups import ReentrantCallbackGroup

        from pam_ros.action import DescribeObject

        self._node = node
        self._get_scheduler = get_scheduler
        self._not_ready = not_ready
        self._type = DescribeObject
        self._cancel_events: dict[bytes, threading.Event] = {}
        self._events_lock = threading.Lock()
        self._accept_cancel = CancelResponse.ACCEPT
        self.server = ActionServer(
            node,
            DescribeObject,
            "describe_object",
            execute_callback=self._execute,
            cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )

    def _event(self, goal_handle) -> threading.Event:
        key = bytes(goal_handle.goal_id.uuid)
        with self._events_lock:
            return self._cancel_events.setdefault(key, threading.Event())

    def _on_cancel(self, goal_handle):
        self._event(goal_handle).set()  # the generating thread stops at its next token
        return self._accept_cancel

    def _execute(self, goal_handle):
        result = self._type.Result()
        started = time.monotonic()
        cancel = self._event(goal_handle)
        try:
            goal = goal_handle.request
            reason = self._not_ready()
            scheduler = self._get_scheduler()
            if reason is None and scheduler is None:
                reason = "semantics are disabled (semantics.enabled:=false)"
            if reason is not None:
                result.success, result.message = False, reason
                goal_handle.abort()
                return result
            text_so_far: list[str] = []

            def on_piece(piece: str) -> None:
                text_so_far.append(piece)
                feedback = self._type.Feedback(text="".join(text_so_far), piece=piece)
                goal_handle.publish_feedback(feedback)

            answer = scheduler.describe_streaming(
                goal.id,
                goal.kind or "category",
                float(goal.max_age),
                goal.language or None,
                on_piece=on_piece,
                cancel=cancel,
            )
        except SchedulerError as exc:
            result.success, result.message = False, str(exc)
            goal_handle.abort()
            return result
        except Exception as exc:  # never into the executor
            self._node.get_logger().error(f"describe_object failed: {exc!r}")
            result.success, result.message = False, f"internal error: {exc!r}"
            goal_handle.abort()
            return result
        finally:
            with self._events_lock:
                self._cancel_events.pop(bytes(goal_handle.goal_id.uuid), None)
        from pam_ros.ros import message_builders

        result.semantics = message_builders.semantics_msg(answer.semantics)
        result.text = answer.text
        result.from_cache = answer.from_cache
        result.latency = float(time.monotonic() - started)
        if answer.cancelled:
            result.success, result.message = False, "cancelled"
            goal_handle.canceled()
        else:
            result.success = True
            result.message = "from cache" if answer.from_cache else "computed"
            goal_handle.succeed()
        return result
