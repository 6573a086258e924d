"""The one reading of pydantic's validation errors; each edge words them its own way from these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

VALUE_ERROR_PREFIX = "Value error, "  # pydantic's prefix for a ValueError raised by our validators


@dataclass(frozen=True)
class Problem:
    """One validation error: where (the path into the input), pydantic's message and error type."""

    loc: tuple[str | int, ...]
    message: str
    type: str

    @property
    def where(self) -> str:
        return ".".join(str(part) for part in self.loc)

    @property
    def text(self) -> str:
        """The message without pydantic's "Value error, " prefix."""
        return self.message.removeprefix(VALUE_ERROR_PREFIX)

    @property
    def line(self) -> str:
        """`where: text`, or the text alone for an error about the whole input."""
        return f"{self.where}: {self.text}" if self.loc else self.text


def problems_of(errors: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Problems from pydantic's (or FastAPI's) error dictionaries."""
    return [
        Problem(tuple(error.get("loc", ())), str(error.get("msg", "invalid")), str(error.get("type", "")))
        for error in errors
    ]


def problems(exc: ValidationError) -> list[Problem]:
    return problems_of(exc.errors(include_url=False, include_input=False))


def reasons(exc: Exception) -> list[str]:
    """Readable reasons for a rejected item: `field: message` per validation error, else the error."""
    if isinstance(exc, ValidationError):
        return [problem.line for problem in problems(exc)]
    return [str(exc)]
