"""docker-compose.yml stays consistent with the code: every command is our entry point with real
targets, and every variable it sets is one a settings class reads."""

from __future__ import annotations

import re

import yaml
from pydantic_settings import BaseSettings

from services.runtime import TARGETS, parse_targets
from shared.contracts.storage import schema_text
from shared.settings import CommonSettings, ServerSettings
from tests.support import REPO

OUR_SERVICES = {"ingest", "stream", "query", "etl", "live"}


def settings_classes() -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = [CommonSettings, ServerSettings]
    for target in TARGETS:
        path = REPO / "services" / target / "settings.py"
        if not path.exists():
            continue
        module = __import__(f"services.{target}.settings", fromlist=["*"])
        found += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, BaseSettings) and v is not BaseSettings
        ]
    return found


def known_variables() -> set[str]:
    names: set[str] = set()
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            names.add(field.alias if field.alias else f"{prefix}{name}".upper())
    return names


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_target_has_a_container() -> None:
    assert set(compose()["services"]) >= OUR_SERVICES


def test_commands_use_the_entry_point_with_real_targets() -> None:
    for name in OUR_SERVICES:
        command = [str(part) for part in compose()["services"][name]["command"]]
        assert command[:3] == ["python", "-m", "services"], name
        targets = parse_targets(command[command.index("--target") + 1])
        assert targets == (name,)


def test_every_variable_set_is_read_by_the_code() -> None:
    known = known_variables()
    for name in OUR_SERVICES:
        env = compose()["services"][name]["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables no settings class reads: {unknown}"
        assert "CLICKHOUSE_URL" in env and env["CLICKHOUSE_URL"].startswith("http://")


def test_dockerfile_copies_what_the_entry_point_imports() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for package in ("shared", "services"):
        assert re.search(rf"COPY {package} ", dockerfile), package
    assert "COPY deploy" not in dockerfile  # the local Kafka runner and the test harness do not ship


def test_the_schema_is_package_data() -> None:
    """An installed package finds its schema wherever it runs from (importlib.resources)."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"shared.contracts" = ["*.sql"]' in pyproject
    assert "CREATE TABLE IF NOT EXISTS {database}.analytics_events" in schema_text()
