"""The README's configuration tables list every setting a settings class reads, once, with its default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tests.support import REPO
from tests.system.test_deploy import settings_classes

ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+) \|", re.MULTILINE)


def documented() -> dict[str, str]:
    """Variable -> default cell, from every table row that starts with one variable."""
    rows = ROW.findall((REPO / "README.md").read_text())
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), (
        f"documented twice: {sorted({n for n in names if names.count(n) > 1})}"
    )
    return {name: cell.strip() for name, cell in rows}


def defaults() -> dict[str, Any]:
    """Variable -> default value, from the settings classes."""
    found: dict[str, Any] = {}
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            found[field.alias or f"{prefix}{name}".upper()] = field.default
    return found


def shown(value: Any) -> str:
    """A default as the README writes it (None, like "", is no default: the README says what then)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, SecretStr):
        return shown(value.get_secret_value())
    if isinstance(value, Path):
        return str(value)
    return str(value)


def test_every_setting_is_documented_and_nothing_else() -> None:
    table, code = documented(), defaults()
    assert set(table) - set(code) == set(), "documented but read by no settings class"
    assert set(code) - set(table) == set(), "read by a settings class but not documented in the README"


def test_documented_defaults_are_the_real_ones() -> None:
    table = documented()
    for name, default in defaults().items():
        cell = table[name]
        if shown(default) == "":
            assert cell.startswith("(none"), f"{name}: the README gives {cell!r}, the code has no default"
        else:
            literal = re.match(r"`([^`]*)`", cell)
            assert literal and literal.group(1) == shown(default), (
                f"{name}: README {cell!r}, code {default!r}"
            )
