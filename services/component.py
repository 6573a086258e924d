"""The small interface every service implements so one entry point can run any subset of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter

if TYPE_CHECKING:
    from services.runtime import Runtime


class Component(Protocol):
    """A service: its HTTP routes, whether it touches ClickHouse, and its start/stop hooks."""

    name: str
    uses_clickhouse: bool
    uses_producer: bool

    def routers(self) -> list[APIRouter]: ...

    async def start(self, runtime: Runtime) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


@dataclass
class BaseComponent:
    """Defaults for components with nothing to start or stop."""

    name: str = "base"
    uses_clickhouse: bool = False
    uses_producer: bool = False
    extra_routers: list[APIRouter] = field(default_factory=list)

    def routers(self) -> list[APIRouter]:
        return list(self.extra_routers)

    async def start(self, runtime: Runtime) -> None:
        return None

    async def stop(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {}
