"""Kafka -> live counts (placeholder until the live issue lands: registers nothing)."""

from __future__ import annotations

from typing import Any

import faust


def register_live_counts(app: faust.App, topic: faust.TopicT, runtime: Any) -> None:
    return None
