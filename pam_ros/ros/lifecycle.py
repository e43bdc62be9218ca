"""Lifecycle requests from other processes: an invalid one is refused, never fatal.

rclpy's LifecycleNode answers a ChangeState whose transition is not valid in the current state
(activate while active, an unknown id, ...) by raising `RCLError: Transition is not registered`
out of the service callback, which stops the executor and ends the process. `TransitionGuard`
wraps that service: a request is checked against the transitions the current state offers
and refused with `success: false` (logged with the valid ones) when it is not among them, or
when another transition (the autostart, a shutdown) is in progress.
"""

from __future__ import annotations

import threading

PRIMARY_STATES = ("unconfigured", "inactive", "active", "finalized")


class TransitionGuard:
    """One transition at a time; ChangeState requests checked before rclpy sees them."""

    def __init__(self, node) -> None:
        self._node = node
        self.lock = threading.Lock()  # held for the whole of any transition
        self.refusing_reason = ""  # set while shutting down: every request is refused
        service = getattr(node, "_service_change_state", None)
        if service is not None:  # None: the node has no lifecycle services
            self._change_state = service.callback
            service.callback = self._on_change_state

    def valid_transitions(self) -> dict[int, str]:
        """Transition id → label, offered by the current (primary) state."""
        machine = self._node._state_machine
        if machine.current_state[1] not in PRIMARY_STATES:
            return {}
        return {t[0]: t[1] for t in machine.available_transitions}

    def refusal(self, transition_id: int, label: str) -> str:
        """Why the transition must be refused now ("" when it may go ahead)."""
        if self.refusing_reason:
            return self.refusing_reason
        state = self._node._state_machine.current_state[1]
        valid = self.valid_transitions()
        known = label in valid.values() if label else transition_id in valid
        if known:
            return ""
        offered = ", ".join(f"{tid} ({name})" for tid, name in sorted(valid.items())) or "none"
        asked = f"{label!r}" if label else f"id {transition_id}"
        return f"transition {asked} is not valid in state '{state}' (valid: {offered})"

    def _on_change_state(self, request, response):
        transition = request.transition
        if not self.lock.acquire(blocking=False):
            response.success = False
            self._node.get_logger().warning(
                f"lifecycle request {transition.label or transition.id} refused: "
                "another transition is in progress"
            )
            return response
        try:
            reason = self.refusal(transition.id, transition.label)
            if reason:
                self._node.get_logger().warning(f"lifecycle request refused: {reason}")
                response.success = False
                return response
            return self._change_state(request, response)
        except Exception as exc:  # an rcl error here would stop the executor
            self._node.get_logger().error(f"lifecycle request failed: {exc!r}")
            response.success = False
            return response
        finally:
            self.lock.release()
