"""The live gateway's metrics (shared/metrics.py), read when scraped from the plain counts the hub
keeps (a message written to a thousand clients costs a thousand integer additions, not a thousand
metric updates)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from services.live.hub import Hub


def hub_figures(hub: Hub) -> Iterable[Metric]:
    yield GaugeMetricFamily("analytics_live_clients", "Connected WebSocket clients", value=len(hub.clients))
    yield CounterMetricFamily(
        "analytics_live_messages_sent", "Messages written to WebSocket clients", value=hub.sent_total
    )
    yield CounterMetricFamily(
        "analytics_live_messages_dropped",
        "new_event messages clients lost (rate limit, full queue, older than LIVE_MAX_DELAY_SECONDS)",
        value=hub.dropped_total,
    )
    yield CounterMetricFamily(
        "analytics_live_events_received", "New events read from the live topic", value=hub.events_received
    )
