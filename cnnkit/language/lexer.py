"""Turns spec text into tokens, joining lines that continue a chain.

A newline ends a statement unless it is inside brackets or parentheses, or the chain
continues: the line ends with ``->`` or the next line starts with ``->``.  Digits are the
ASCII 0-9 only (Python's ``\\d`` and ``int()`` would also take ``２`` or ``٢``).  One pass,
in time linear in the text: a run of blank lines is one match, and of the newlines between
two statements only the first becomes a token.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import Span, SpecError

# 35 times the biggest spec in specs/ (3.7 KB), and small enough that any text under it is
# read in well under a second: on this project's 2-core machine a chain of real layers at
# the limit takes 0.13-0.27 s, the worst text (one- and two-character tokens) 0.3-0.6 s.
# Python makes about a million tokens a second, so 10 MB of layers would take seconds.
MAX_SOURCE_CHARS = 128 * 1024
# The largest whole number a spec may write, and the most values one tensor may hold: far
# beyond any real network, and small enough that every count the calculator derives from
# them stays a finite float.
MAX_NUMBER = 10**30
MAX_DIGITS = len(str(MAX_NUMBER))

TOKEN_PATTERNS = [
    ("SPACE", r"[ \t\r\f]+"),
    ("COMMENT", r"#[^\n]*"),
    ("NEWLINE", r"\n[\n \t\r\f]*"),  # with the blank lines after it
    ("ARROW", r"->|→"),
    # padding per side, before:after on an axis: pad=0:1, pad=0x1:2 (only with a colon)
    ("SIDES", r"(?=[0-9][0-9xX]*:)[0-9]+(?::[0-9]+)?(?:[xX][0-9]+(?::[0-9]+)?)?"
              r"(?![A-Za-z0-9_:])"),
    ("SHAPE", r"[0-9]+(?:[xX][0-9]+)+(?![A-Za-z0-9_])"),
    ("NUMBER", r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?![A-Za-z0-9_])"),
    ("WORD", r"[A-Za-z_][A-Za-z0-9_]*(?:-[0-9]+)?"),
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
WORDLIKE = re.compile(r"[-.\w]*")  # what an error message quotes from where lexing stopped
OPENERS = ("LBRACK", "LPAREN")
CLOSERS = ("RBRACK", "RPAREN")


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


def whole_number(digits: str, span: Span | None) -> int:
    """The value of a string of ASCII digits, at most ``MAX_NUMBER``.  (Thousands of digits
    are refused before ``int()``, which is slow on them or refuses them itself.)"""
    too_long = len(digits) > MAX_DIGITS and len(digits.lstrip("0")) > MAX_DIGITS
    if too_long or int(digits) > MAX_NUMBER:
        raise SpecError(
            f"the number {digits[:12]}{'...' if len(digits) > 12 else ''} ({len(digits):,} "
            "digits) is too large",
            span,
            "numbers in a spec are at most 10**30",
        )
    return int(digits)


def tokenize(source: str) -> list[Token]:
    if len(source) > MAX_SOURCE_CHARS:
        raise SpecError(
            f"the spec is {len(source) / 2**20:.2f} MB ({len(source):,} characters), over the "
            f"limit of {MAX_SOURCE_CHARS // 1024} KB",
            None,
            "a spec holds one network; big ones stay small with `[ ... ]*N` and named blocks",
        )
    tokens: list[Token] = []
    depth = 0  # of open brackets and parentheses, inside which newlines are ignored
    pending_newline = None  # ends the statement unless the next token is `->` or the end
    line, line_start = 1, 0
    for match in MASTER.finditer(source):
        kind = match.lastgroup
        if kind == "SPACE" or kind == "COMMENT":
            continue
        text, start = match.group(), match.start()
        if kind == "NEWLINE":
            if pending_newline is None and depth == 0 and tokens and tokens[-1].kind != "ARROW":
                pending_newline = Token(kind, "\n", Span(line, start - line_start + 1))
            line += text.count("\n")
            line_start = start + text.rindex("\n") + 1
            continue
        span = Span(line, start - line_start + 1, len(text))
        if kind == "UNEXPECTED":
            raise _unexpected(source, start, span)
        if pending_newline is not None:
            if kind != "ARROW":
                tokens.append(pending_newline)
            pending_newline = None
        if kind in OPENERS:
            depth += 1
        elif kind in CLOSERS:
            depth = max(0, depth - 1)
        tokens.append(Token(kind, text, span))
    tokens.append(Token("EOF", "", Span(line, len(source) - line_start + 1)))
    return tokens


def _unexpected(source: str, start: int, span: Span) -> SpecError:
    """Where the lexer stops: at a look-alike digit (also after the ASCII text it follows, as
    in FC-１0 or 28x٢٨), a number run into letters (2a), or any other stray character."""
    run = WORDLIKE.match(source, start).group()
    lookalike = re.search(r"(?![0-9])\d", run)
    if lookalike:
        return SpecError(f"`{lookalike.group()}` is not one of the digits 0-9",
                         Span(span.line, span.col + lookalike.start()),
                         "numbers are written with the ASCII digits 0-9 only")
    if run[:1].isdigit():
        return SpecError(f"`{run}` is not a number", Span(span.line, span.col, len(run)),
                         "numbers look like 2, 0.5 or 1e-5; layer names start with a letter")
    if source[start] == ":":
        return SpecError("unexpected `:`", span, "padding per side is before:after on one "
                         "axis, height x width: pad=1:2, or pad=0x1:2 (height 0, width 1 "
                         "left and 2 right)")
    return SpecError(f"unexpected character `{source[start]}`", span,
                     "layers are written like CONV3-64, FC-10 or POOL2, joined by `->`")
