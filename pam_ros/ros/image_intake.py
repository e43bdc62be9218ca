"""Subscriptions whose QoS follows the publishers they listen to, and QoS events that are counted.

A camera in another process delivers large frames (640×480 rgb8 and up) reliably only over a
reliable connection (or with a DDS profile on both sides, see config/fastdds_large_frames.xml):
with Fast DDS's defaults a best-effort reader loses most of them, and a reliable reader of a
best-effort camera connects to nothing. So, as rosbag2 does, `QosMatchedSubscription` looks up
the publishers' QoS (`get_publishers_info_by_topic`) when it starts and whenever the set of
publishers changes, and subscribes with what they offer:

- every publisher reliable        → reliable, keep-last `depth` (every frame while the
                                    callback keeps up; only the newest when it does not)
- any publisher best-effort       → best-effort (the only reader that connects to all of them)
- no publisher yet                → best-effort (connects to anything), re-decided on discovery

`reliability` "reliable" / "best_effort" fixes the choice instead (the `qos.reliability`
parameter's override). Generic: any topic and message type (images, depth, camera_info).

Lost messages and incompatible QoS are never silent: each subscription and each publisher made
here reports them through rclpy's QoS event callbacks into a shared `DeliveryCounters` (counted
in /diagnostics) and logs a throttled warning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
)

AUTO = "auto"
RELIABILITY_MODES = (AUTO, "best_effort", "reliable")
GRAPH_POLL_S = 1.0  # how often the publishers on a topic are looked up again
LOG_THROTTLE_S = 10.0


@dataclass
class DeliverySnapshot:
    """A copy of `DeliveryCounters` for /diagnostics."""

    messages_lost: int = 0  # reported lost by DDS on the node's subscriptions
    incompatible_qos: int = 0  # incompatible-QoS events, subscriptions and publishers together
    qos_changes: int = 0  # times a subscription was re-created to follow its publishers


class DeliveryCounters:
    """Thread-safe counters fed by QoS event callbacks of all subscriptions/publishers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = DeliverySnapshot()

    def add(self, *, lost: int = 0, incompatible: int = 0, qos_changes: int = 0) -> None:
        with self._lock:
            self._values.messages_lost += lost
            self._values.incompatible_qos += incompatible
            self._values.qos_changes += qos_changes

    def snapshot(self) -> DeliverySnapshot:
        with self._lock:
            return DeliverySnapshot(**vars(self._values))


def reliability_name(policy: ReliabilityPolicy) -> str:
    return "reliable" if policy == ReliabilityPolicy.RELIABLE else "best_effort"


def matched_reliability(publisher_reliabilities: list[ReliabilityPolicy]) -> ReliabilityPolicy:
    """The reader reliability for these publishers (see the module docstring)."""
    if publisher_reliabilities and all(
        policy == ReliabilityPolicy.RELIABLE for policy in publisher_reliabilities
    ):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def subscription_events(node, topic: str, counters: DeliveryCounters) -> SubscriptionEventCallbacks:
    """Event callbacks that count and log (throttled) lost messages and incompatible QoS."""
    logger = node.get_logger()

    def on_lost(event) -> None:
        counters.add(lost=int(event.total_count_change))
        logger.warning(
            f"{topic}: DDS lost {event.total_count_change} message(s) "
            f"({event.total_count} in all); see the README's DDS settings",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def on_incompatible(event) -> None:
        counters.add(incompatible=int(event.total_count_change))
        logger.warning(
            f"{topic}: a publisher offers incompatible QoS "
            f"({qos_policy_name_from_kind(event.last_policy_kind)}): nothing arrives from it",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    return SubscriptionEventCallbacks(message_lost=on_lost, incompatible_qos=on_incompatible)


def publisher_events(node, topic: str, counters: DeliveryCounters) -> PublisherEventCallbacks:
    """Event callbacks that count and log (throttled) subscribers asking for incompatible QoS."""
    logger = node.get_logger()

    def on_incompatible(event) -> None:
        counters.add(incompatible=int(event.total_count_change))
        logger.warning(
            f"{topic}: a subscriber requests incompatible QoS "
            f"({qos_policy_name_from_kind(event.last_policy_kind)}): it receives nothing",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    return PublisherEventCallbacks(incompatible_qos=on_incompatible)


@dataclass(frozen=True)
class IntakeConfig:
    reliability: str = AUTO  # one of RELIABILITY_MODES
    depth: int = 1  # keep-last depth of the subscription


def fixed_qos(config: IntakeConfig) -> QoSProfile:
    """One QoS for a subscription that cannot follow its publishers (e.g. a message_filters
    Subscriber): `auto` becomes best-effort, which connects to any publisher."""
    reliable = config.reliability == "reliable"
    return QoSProfile(
        depth=config.depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


class QosMatchedSubscription:
    """One subscription to `topic` that follows its publishers' reliability (module docstring).

    Create it in on_activate and `destroy()` it in on_deactivate. The subscription is re-created
    only when the decided reliability changes, from a graph-poll timer on `callback_group`.
    """

    def __init__(
        self,
        node,
        msg_type,
        topic: str,
        callback: Callable,
        config: IntakeConfig,
        counters: DeliveryCounters,
        callback_group=None,
    ) -> None:
        if config.reliability not in RELIABILITY_MODES:
            raise ValueError(f"reliability {config.reliability!r} not in {RELIABILITY_MODES}")
        self._node = node
        self._msg_type = msg_type
        self._topic = topic
        self._callback = callback
        self._config = config
        self._counters = counters
        self._group = callback_group
        self._lock = threading.Lock()
        self._subscription = None
        self._reliability: ReliabilityPolicy | None = None
        self._publisher_count = -1
        self._refresh()
        self._timer = (
            node.create_timer(GRAPH_POLL_S, self._refresh, callback_group=callback_group)
            if config.reliability == AUTO
            else None
        )

    @property
    def topic_name(self) -> str:
        return self._subscription.topic_name if self._subscription is not None else self._topic

    @property
    def reliability(self) -> str:
        """The reliability subscribed with now ("reliable" / "best_effort")."""
        return reliability_name(self._reliability) if self._reliability is not None else ""

    @property
    def publisher_count(self) -> int:
        """Publishers seen at the last lookup (-1 when the reliability is fixed)."""
        return self._publisher_count

    def describe(self) -> str:
        mode = "matched to its publishers" if self._config.reliability == AUTO else "fixed"
        return f"{self.topic_name} ({self.reliability}, depth {self._config.depth}, {mode})"

    def _decide(self) -> tuple[ReliabilityPolicy, int]:
        if self._config.reliability == "reliable":
            return ReliabilityPolicy.RELIABLE, -1
        if self._config.reliability == "best_effort":
            return ReliabilityPolicy.BEST_EFFORT, -1
        resolved = self._node.resolve_topic_name(self._topic)
        infos = self._node.get_publishers_info_by_topic(resolved)
        return matched_reliability([info.qos_profile.reliability for info in infos]), len(infos)

    def _refresh(self) -> None:
        try:
            reliability, publishers = self._decide()
        except Exception as exc:  # a graph query failing must not stop the executor
            self._node.get_logger().warning(
                f"{self._topic}: publisher lookup failed: {exc!r}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return
        with self._lock:
            if reliability == self._reliability and self._subscription is not None:
                self._publisher_count = publishers
                return
            previous = self._subscription
            changed = previous is not None
            qos = QoSProfile(
                depth=self._config.depth,
                history=HistoryPolicy.KEEP_LAST,
                reliability=reliability,
                durability=DurabilityPolicy.VOLATILE,
            )
            self._subscription = self._node.create_subscription(
                self._msg_type,
                self._topic,
                self._callback,
                qos,
                callback_group=self._group,
                event_callbacks=subscription_events(self._node, self._topic, self._counters),
            )
            self._reliability = reliability
            self._publisher_count = publishers
            if previous is not None:  # after the new one exists: no gap in delivery
                self._node.destroy_subscription(previous)
        if changed:
            self._counters.add(qos_changes=1)
            self._node.get_logger().info(
                f"{self.topic_name}: {publishers} publisher(s); subscribing "
                f"{reliability_name(reliability)} to match them"
            )

    def destroy(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        with self._lock:
            if self._subscription is not None:
                self._node.destroy_subscription(self._subscription)
                self._subscription = None
