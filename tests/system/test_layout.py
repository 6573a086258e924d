"""The tree's layout holds: services import only shared/ and themselves, shared/ imports no service,
and the contracts import no transport. Each failure names the offending file and line."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support import REPO

SERVICES = sorted(p for p in (REPO / "services").iterdir() if (p / "__init__.py").exists())
OUR_PACKAGES = {"services", "shared", "deploy", "tests", "bench"}
# What a contract may not import: the clients and the frameworks they are carried by.
TRANSPORTS = {
    "aiokafka",
    "faust",
    "clickhouse_connect",
    "chdb",
    "fastapi",
    "starlette",
    "httpx",
    "uvicorn",
    "websockets",
    "shared.kafka",
    "shared.clickhouse",
    "shared.http",
    "shared.deps",
    "shared.component",
    "shared.live_topic",
}


def imports(path: Path, package: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `path` (a module of `package`, by default the
    one its place in the repository says), type-checking-only ones included."""
    if package is None:
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield node.lineno, f"{base}.{node.module}" if node.module else base
            else:
                yield node.lineno, node.module or ""


def offending(root: Path, allowed: Callable[[str], bool]) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, module in imports(path):
            if not allowed(module):
                found.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_services_import_only_shared_and_themselves() -> None:
    found = []
    for service in SERVICES:
        own = f"services.{service.name}"

        def allowed(module: str, own: str = own) -> bool:
            ours = module.split(".")[0] in OUR_PACKAGES
            return not ours or within(module, "shared") or within(module, own)

        found += offending(service, allowed)
    assert not found, "a service reaches outside shared/ and itself:\n" + "\n".join(found)


def test_shared_imports_no_service() -> None:
    found = offending(REPO / "shared", lambda m: m.split(".")[0] not in OUR_PACKAGES - {"shared"})
    assert not found, "shared/ depends on code above it:\n" + "\n".join(found)


def test_contracts_import_no_transport() -> None:
    found = offending(REPO / "shared" / "contracts", lambda m: not any(within(m, t) for t in TRANSPORTS))
    assert not found, "a contract imports a transport:\n" + "\n".join(found)


def test_the_layout_test_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Plain, from-, relative and type-checking-only imports are all found, so none can hide one."""
    module = tmp_path / "example.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import services.live.hub\n"
        "from services.stream import loader\n"
        "from ..etl import runner\n"
        "from . import filters\n"
        "if TYPE_CHECKING:\n"
        "    from deploy.processes import ServiceProcess\n"
    )
    assert [m for _, m in imports(module, package="services.query")] == [
        "typing",
        "services.live.hub",
        "services.stream",
        "services.etl",
        "services.query",
        "deploy.processes",
    ]
