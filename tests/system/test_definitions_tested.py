"""Every rule of the README's Definitions section has at least one test named after it
(`test_rule_<rule name in snake case>...`), so a rule cannot be written without being pinned."""

from __future__ import annotations

import ast
import re

from tests.support import REPO

RULE = re.compile(r"^\*\*([A-Z][^*]+?)\.\*\*", re.MULTILINE)


def rules() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Definitions\n", 1)[1].split("\n## ", 1)[0]
    return [re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") for name in RULE.findall(section)]


def rule_test_names() -> set[str]:
    names = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_rule_"
            ):
                names.add(node.name)
    return names


def test_every_definition_has_a_test_named_after_it() -> None:
    found, names = rules(), rule_test_names()
    assert len(found) >= 5, found
    untested = [rule for rule in found if not any(n.startswith(f"test_rule_{rule}") for n in names)]
    assert untested == [], f"rules without a test_rule_<name> test: {untested}"
