"""`pam_node`'s main: start, autostart, and stop within a bounded time on SIGINT / SIGTERM.

rclpy's own signal handlers shut the context down the moment a signal arrives: a configure in
progress then fails to publish its transition (a traceback), SIGINT raises KeyboardInterrupt
wherever the main thread is, and the tracking thread publishes into a dead context
(`publisher's context is invalid`, at ERROR, on every stop). Here rclpy installs no handlers;
SIGINT and SIGTERM only set an event the main thread waits on, and the stop is ordered:

1. the node refuses new requests and transitions and stops taking frames (`begin_shutdown`);
2. the autostart (a configure in progress), the tracking thread, the semantics worker and the
   executor finish and the node and context are destroyed, in a helper thread;
3. if that is not done within `SHUTDOWN_DEADLINE_S` (a frame or a describe longer than that),
   what is still in flight is abandoned: one warning, then the process exits at once.

The exit code is 0 for a stop by signal (also on the deadline path and on a second signal) and
for `--help`, 2 for a bad parameter value at start. Before rclpy.init, `command_line.prepare`
adds the package's default params file when none is given and sets the Fast DDS profile, as
the launch file does; the node logs both.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from pam_ros.ros.command_line import help_requested, prepare, print_usage
from pam_ros.ros.executor import NodeExecutor
from pam_ros.ros.parameters import ParameterValidationError, command_line_parameters

# launch escalates SIGINT to SIGTERM after 5 s (its sigterm_timeout): stop well before.
SHUTDOWN_DEADLINE_S = 3.0
EXECUTOR_THREADS = 4
EXIT_STOPPED = 0
EXIT_BAD_PARAMETER = 2


class StopRequest:
    """SIGINT / SIGTERM → an event (a second signal exits at once)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def install(self) -> None:
        # Also where the parent left them ignored: launch starts its processes with SIGINT
        # ignored and then forwards SIGINT to each of them.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self.event.is_set():
            _exit_now(f"second {signal.Signals(signum).name}: exiting at once")
        self.set(signal.Signals(signum).name)

    def set(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def wait(self) -> None:
        while not self.event.wait(0.5):  # a timed wait, so the handler runs promptly
            pass


def _exit_now(message: str) -> None:
    print(f"pam_ros: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_STOPPED)


def _spin(executor, stop: StopRequest) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except Exception as exc:  # the executor died: stop the process rather than hang
        print(f"pam_ros: executor failed: {exc!r}", file=sys.stderr, flush=True)
    stop.set("executor stopped")


def _autostart(node, stop: StopRequest) -> None:
    with node.lifecycle_guard.lock:
        if stop.event.is_set():
            return
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().error("autostart: configure failed; the node waits unconfigured")
            return
        if not stop.event.is_set():
            node.trigger_activate()


def _stop(node, executor, threads: list[threading.Thread]) -> None:
    """Everything after begin_shutdown, in order (run in a helper thread)."""
    for thread in threads:
        thread.join()
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


def run_node(node_class, args: list[str] | None = None) -> int:
    argv = list(sys.argv if args is None else args)
    if help_requested(argv):
        print_usage()
        return EXIT_STOPPED
    # The default params file and the Fast DDS profile, as the launch file gives them; the
    # profile must be in os.environ before rclpy.init creates the DDS participant.
    argv, notes = prepare(argv)
    stop = StopRequest()
    stop.install()
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = node_class(command_line=command_line_parameters(argv))
    except ParameterValidationError as exc:
        for note in notes:
            print(f"pam_ros: {note}", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"pam_ros: bad parameter: {line}", file=sys.stderr)
        rclpy.try_shutdown()
        return EXIT_BAD_PARAMETER
    for note in notes:
        node.get_logger().info(note)
    executor = NodeExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor, stop), name="pam_executor")
    spinner.daemon = True
    spinner.start()
    threads = [spinner]
    if node.params.autostart:
        starter = threading.Thread(target=_autostart, args=(node, stop), name="pam_autostart")
        starter.daemon = True
        starter.start()
        threads.insert(0, starter)
    stop.wait()
    started = time.monotonic()
    logger = node.get_logger()
    logger.info(f"{stop.reason}: shutting down")
    node.begin_shutdown()
    # The autostart must finish before the executor goes; the executor is stopped by _stop.
    stopper = threading.Thread(
        target=_stop, args=(node, executor, threads[:-1]), name="pam_stop", daemon=True
    )
    stopper.start()
    stopper.join(SHUTDOWN_DEADLINE_S)
    if stopper.is_alive():
        busy = [t.name for t in threads if t.is_alive()]
        _exit_now(
            f"still busy after {SHUTDOWN_DEADLINE_S:.0f} s ({', '.join(busy) or 'cleanup'}): "
            "abandoning the work in flight and exiting"
        )
    spinner.join(1.0)
    print(f"pam_ros: stopped in {time.monotonic() - started:.2f} s", file=sys.stderr, flush=True)
    return EXIT_STOPPED
