"""etl service (being built)."""

from __future__ import annotations

from services.component import BaseComponent


def component() -> BaseComponent:
    return BaseComponent(name="etl")
