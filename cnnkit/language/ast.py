"""The syntax tree of a spec, before any shape is known."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Span


@dataclass
class Arg:
    """One option in parentheses: ``stride=2`` (key "stride") or ``0.5`` (key None)."""

    key: str | None
    value: str
    span: Span


@dataclass
class Call:
    """A layer or a named block used by its name, e.g. ``CONV3-64(stride=2)`` or ``res``."""

    word: str
    args: list[Arg]
    span: Span


@dataclass
class Input:
    shape: tuple[int, ...] | None
    span: Span


@dataclass
class Repeat:
    body: Chain
    count: int
    span: Span


@dataclass
class Branch:
    """``RES[ main | shortcut ]`` or ``CAT[ a | b | ... ]``."""

    kind: str  # "RES" or "CAT"
    chains: list[Chain]
    span: Span


Element = Call | Input | Repeat | Branch


@dataclass
class Chain:
    elements: list[Element]
    span: Span


@dataclass
class Definition:
    name: str
    chain: Chain
    span: Span


@dataclass
class Directive:
    name: str
    value: str
    span: Span


@dataclass
class Program:
    chain: Chain | None
    definitions: dict[str, Definition] = field(default_factory=dict)
    directives: dict[str, Directive] = field(default_factory=dict)
