"""A trend's formula: arithmetic over the series letters, parsed by a small recursive-descent parser
(nothing is ever passed to `eval`). The grammar is the whole allow-list:

    formula := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | atom
    atom    := LETTER | NUMBER | "(" formula ")"

LETTER is one series letter in use (A for the first series, B for the second, ...), NUMBER a decimal
literal (`2`, `0.5`, `100`). Division by zero gives null, and null stays null through + - * /.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

MAX_FORMULA_LENGTH = 500
MAX_DEPTH = 50
TOKEN = re.compile(r"\s*(?:(?P<number>[0-9]+(?:\.[0-9]+)?)|(?P<letter>[A-Z])|(?P<op>[-+*/()]))")
LETTERS = "ABCDEFGHIJ"


class FormulaError(ValueError):
    """The formula does not follow the grammar, or names a series that does not exist."""


@dataclass(frozen=True)
class Number:
    value: Fraction


@dataclass(frozen=True)
class Letter:
    name: str


@dataclass(frozen=True)
class Negate:
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Number | Letter | Negate | Binary


def tokens(text: str) -> list[tuple[str, str]]:
    found, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise FormulaError(f"unexpected {text[at:].strip()[:10]!r} at character {at + 1}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        at = match.end()
    return found


class Parser:
    def __init__(self, text: str, letters: str) -> None:
        if len(text) > MAX_FORMULA_LENGTH:
            raise FormulaError(f"at most {MAX_FORMULA_LENGTH} characters")
        self.items = tokens(text)
        self.at = 0
        self.letters = letters

    def peek(self) -> str | None:
        return self.items[self.at][1] if self.at < len(self.items) else None

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.items):
            raise FormulaError("the formula ends too early")
        self.at += 1
        return self.items[self.at - 1]

    def parse(self) -> Node:
        if not self.items:
            raise FormulaError("the formula is empty")
        node = self.formula(0)
        if self.at != len(self.items):
            raise FormulaError(f"unexpected {self.peek()!r} after a complete formula")
        return node

    def binary(self, ops: str, operand: Callable[[int], Node], depth: int) -> Node:
        node = operand(depth)
        while (token := self.peek()) is not None and token in ops and self.items[self.at][0] == "op":
            self.take()
            node = Binary(token, node, operand(depth))
        return node

    def formula(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FormulaError(f"nested more than {MAX_DEPTH} deep")
        return self.binary("+-", self.term, depth)

    def term(self, depth: int) -> Node:
        return self.binary("*/", self.unary, depth)

    def unary(self, depth: int) -> Node:
        if self.peek() in ("-", "+"):
            op = self.take()[1]
            operand = self.unary(depth + 1)
            return Negate(operand) if op == "-" else operand
        return self.atom(depth)

    def atom(self, depth: int) -> Node:
        kind, text = self.take()
        if kind == "number":
            return Number(Fraction(text))
        if kind == "letter":
            if text not in self.letters:
                raise FormulaError(f"series {text} does not exist (series are {', '.join(self.letters)})")
            return Letter(text)
        if text == "(":
            node = self.formula(depth + 1)
            if self.take()[1] != ")":
                raise FormulaError("a parenthesis is not closed")
            return node
        raise FormulaError(f"unexpected {text!r}")


def parse(text: str, series: int) -> Node:
    """The formula's tree, for `series` series (letters A.. up to that many)."""
    return Parser(text, LETTERS[:series]).parse()


def evaluate(node: Node, values: Mapping[str, Fraction | None]) -> Fraction | None:
    """The exact value, or None after a division by zero (or a null operand)."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Letter):
        return values[node.name]
    if isinstance(node, Negate):
        operand = evaluate(node.operand, values)
        return None if operand is None else -operand
    left, right = evaluate(node.left, values), evaluate(node.right, values)
    if left is None or right is None:
        return None
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    return None if right == 0 else left / right
