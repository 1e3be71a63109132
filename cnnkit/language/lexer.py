"""Turns spec text into tokens, joining lines that continue a chain.

A newline ends a statement unless it is inside brackets or parentheses, or the chain
continues: the line ends with ``->`` or the next line starts with ``->``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import Span, SpecError

TOKEN_PATTERNS = [
    ("SPACE", r"[ \t\r\f]+"),
    ("COMMENT", r"#[^\n]*"),
    ("NEWLINE", r"\n"),
    ("ARROW", r"->|→"),
    ("SHAPE", r"\d+(?:[xX]\d+)+(?![A-Za-z0-9_])"),
    ("NUMBER", r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_])"),
    ("WORD", r"[A-Za-z_][A-Za-z0-9_]*(?:-\d+)?"),
    ("LBRACK", r"\["),
    ("RBRACK", r"\]"),
    ("LPAREN", r"\("),
    ("RPAREN", r"\)"),
    ("STAR", r"\*|×"),
    ("COMMA", r","),
    ("EQUALS", r"="),
    ("PIPE", r"\|"),
    ("AT", r"@"),
    ("UNEXPECTED", r"."),  # anything else: an error, reported where it stands
]
MASTER = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in TOKEN_PATTERNS))
OPENERS = {"LBRACK": "RBRACK", "LPAREN": "RPAREN"}


class Token(NamedTuple):
    kind: str
    text: str
    span: Span

    def describe(self) -> str:
        if self.kind == "EOF":
            return "the end of the file"
        if self.kind == "NEWLINE":
            return "the end of the line"
        return f"`{self.text}`"


def tokenize(source: str) -> list[Token]:
    raw: list[Token] = []
    line, line_start = 1, 0
    for match in MASTER.finditer(source):
        kind, text, start = match.lastgroup, match.group(), match.start()
        if kind == "SPACE" or kind == "COMMENT":
            continue
        if kind == "UNEXPECTED":
            raise SpecError(
                f"unexpected character `{text}`",
                Span(line, start - line_start + 1),
                "layers are written like CONV3-64, FC-10 or POOL2, joined by `->`",
            )
        raw.append(Token(kind, text, Span(line, start - line_start + 1, len(text))))
        if kind == "NEWLINE":
            line, line_start = line + 1, start + 1
    raw.append(Token("EOF", "", Span(line, len(source) - line_start + 1)))
    return _join_continued_lines(raw)


def _join_continued_lines(raw: list[Token]) -> list[Token]:
    """Drop the newlines that do not end a statement."""
    tokens: list[Token] = []
    depth = 0
    for i, token in enumerate(raw):
        if token.kind in OPENERS:
            depth += 1
        elif token.kind in OPENERS.values():
            depth = max(0, depth - 1)
        if token.kind != "NEWLINE":
            tokens.append(token)
            continue
        following = next((raw[k] for k in range(i + 1, len(raw)) if raw[k].kind != "NEWLINE"),
                         raw[-1])
        previous = tokens[-1] if tokens else None
        continues = (
            depth > 0
            or previous is None
            or previous.kind in ("ARROW", "NEWLINE")
            or following.kind in ("ARROW", "EOF")
        )
        if not continues:
            tokens.append(token)
    return tokens
