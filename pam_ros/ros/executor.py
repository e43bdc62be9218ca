"""The executor the node spins on: rclpy's MultiThreadedExecutor, robust to one rclpy race.

rclpy (Jazzy) collects a node's waitables, enters each (marking it in use) and skips those whose
destruction was already requested, but then still adds every one of them to the wait set. A QoS
event handler destroyed at that moment (a subscription with event callbacks destroyed on
deactivate, or re-created when the camera's QoS changes) raises `InvalidHandle` out of the
executor's wait and ends the thread that spins it: the node then answers nothing. The wait is
simply retried here (the next wait no longer sees the destroyed handler).
"""

from __future__ import annotations

from rclpy.exceptions import InvalidHandle
from rclpy.executors import MultiThreadedExecutor


class NodeExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose wait survives a QoS event handler destroyed under it."""

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False) -> None:
        try:
            super()._spin_once_impl(timeout_sec, wait_condition)
        except InvalidHandle:
            pass  # a waitable was destroyed while the wait set was built: wait again
