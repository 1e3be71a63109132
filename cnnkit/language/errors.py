"""Errors in a spec, with enough position information to point at the offending text."""

from __future__ import annotations

from typing import NamedTuple


class Span(NamedTuple):
    """A stretch of source text: 1-based line and column, length in characters.  (A named
    tuple rather than a dataclass: the lexer makes one per token, and tuples are built
    several times faster.)"""

    line: int
    col: int
    length: int = 1


class SpecError(Exception):
    """A spec that cannot be read or whose shapes do not work out.

    Carries the position so the message can show the line with a caret under the culprit,
    and a hint that says how to fix it.
    """

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.filename = "<spec>"
        self.source = ""

    def located(self, filename: str, source: str) -> SpecError:
        self.filename, self.source = filename, source
        return self

    def render(self) -> str:
        """The full message: ``file:line:col: error``, the source line, a caret, the hint."""
        lines = []
        if self.span is None:
            lines.append(f"{self.filename}: error: {self.message}")
        else:
            line, col = self.span.line, self.span.col
            lines.append(f"{self.filename}:{line}:{col}: error: {self.message}")
            # lines as the lexer counts them: split at "\n" only (splitlines() also splits at
            # form feeds and other separators, which the lexer reads as spaces or errors)
            lines_up_to = self.source.split("\n", line)
            text = lines_up_to[line - 1].rstrip("\r") if line <= len(lines_up_to) else ""
            gutter = f"{line:>4} | "
            lines.append(gutter + text)
            width = max(1, min(self.span.length, max(1, len(text) - col + 1)))
            lines.append(" " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^" * width)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
