"""Recursive-descent parser: tokens -> ``Program``.

Grammar (one statement per logical line)::

    program    := statement (NEWLINE statement)*
    statement  := '@' WORD value | WORD '=' chain | chain
    chain      := element ('->' element)*
    element    := '[' chain ']' '*' NUMBER
                | ('RES' | 'CAT') '[' chain ('|' chain)* ']'
                | 'INPUT' SHAPE?
                | WORD ('(' arg (',' arg)* ')')?
    arg        := WORD '=' value | value

Hand-written so every error can name what was expected and where the construct began.
"""

from __future__ import annotations

from .ast import Arg, Branch, Call, Chain, Definition, Directive, Element, Input, Program, Repeat
from .errors import Span, SpecError
from .lexer import Token, tokenize, whole_number

BRANCH_KEYWORDS = ("RES", "CAT")
DIRECTIVES = {"rounding": ("strict", "floor", "ceil")}


def parse_program(source: str) -> Program:
    return _Parser(tokenize(source)).program()


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0

    # -- token helpers -------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def expect(self, kind: str, what: str, hint: str | None = None) -> Token:
        if self.token.kind != kind:
            raise SpecError(f"expected {what}, found {self.token.describe()}", self.token.span, hint)
        return self.advance()

    # -- grammar -------------------------------------------------------------------------
    def program(self) -> Program:
        program = Program(chain=None)
        while self.token.kind != "EOF":
            if self.token.kind == "NEWLINE":
                self.advance()
                continue
            self.statement(program)
            if self.token.kind not in ("NEWLINE", "EOF"):
                raise SpecError(
                    f"unexpected {self.token.describe()} after the end of the chain",
                    self.token.span,
                    "join layers with `->`",
                )
        return program

    def statement(self, program: Program) -> None:
        start = self.token
        if start.kind == "AT":
            directive = self.directive()
            if directive.name in program.directives:
                first = program.directives[directive.name].span
                raise SpecError(
                    f"`@{directive.name}` is given twice (first at line {first.line}, "
                    f"column {first.col})",
                    directive.span,
                    f"keep one `@{directive.name}` line",
                )
            program.directives[directive.name] = directive
        elif start.kind == "WORD" and self.peek().kind == "EQUALS":
            self.advance()
            self.advance()
            if start.text in program.definitions:
                first = program.definitions[start.text].span
                raise SpecError(
                    f"block `{start.text}` is defined twice (first at line {first.line})",
                    start.span,
                    "give the second block another name",
                )
            program.definitions[start.text] = Definition(start.text, self.chain(), start.span)
        else:
            chain = self.chain()
            if program.chain is not None:
                raise SpecError(
                    "a spec holds one network, and this line starts a second chain",
                    chain.span,
                    "to continue the chain, end the previous line with `->` "
                    "or start this line with `->`",
                )
            program.chain = chain

    def directive(self) -> Directive:
        at = self.advance()
        name_token = self.expect("WORD", "a directive name after `@`", "write `@rounding floor`")
        name = name_token.text.lower()
        if name not in DIRECTIVES:
            raise SpecError(
                f"unknown directive `@{name_token.text}`",
                name_token.span,
                "the directives are: " + ", ".join(f"@{d}" for d in DIRECTIVES),
            )
        choices = DIRECTIVES[name]
        value = self.token
        if value.kind != "WORD" or value.text.lower() not in choices:
            raise SpecError(
                f"`@{name}` takes one of {', '.join(choices)}; found {value.describe()}",
                value.span,
                f"write `@{name} {choices[1]}`",
            )
        self.advance()
        return Directive(name, value.text.lower(), _joined(at.span, value.span))

    def chain(self) -> Chain:
        start = self.token.span
        elements = [self.element()]
        while self.token.kind == "ARROW":
            self.advance()
            elements.append(self.element())
        return Chain(elements, start)

    def element(self) -> Element:
        token = self.token
        if token.kind == "LBRACK":
            return self.repeat()
        if token.kind == "WORD":
            upper = token.text.upper()
            if upper in BRANCH_KEYWORDS and self.peek().kind == "LBRACK":
                return self.branch()
            if upper == "INPUT":
                return self.input()
            return self.call()
        if token.kind == "ARROW":
            raise SpecError("expected a layer before `->`", token.span, "remove the extra `->`")
        raise SpecError(
            f"expected a layer, found {token.describe()}",
            token.span,
            "a chain is layers joined by `->`, e.g. CONV3-64 -> RELU -> POOL2",
        )

    def repeat(self) -> Repeat:
        open_bracket = self.advance()
        body = self.chain()
        close_bracket = self.closing(open_bracket, "RBRACK", "]")
        if self.token.kind != "STAR":
            raise SpecError(
                "a `[ ... ]` block needs a repeat count: brackets repeat a chain, and a bare "
                "group is not accepted",
                _joined(open_bracket.span, close_bracket.span),
                "write `]*1` to keep the block once or `]*N` to repeat it N times (`]*0` drops "
                "it); branches are written RES[ ... ] or CAT[ ... ]",
            )
        self.advance()
        count = self.token
        if count.kind != "NUMBER" or not count.text.isdigit():
            raise SpecError(
                f"the repeat count must be a whole number >= 0, found {count.describe()}",
                count.span,
                "write e.g. `*2`; `*0` drops the block",
            )
        self.advance()
        return Repeat(body, whole_number(count.text, count.span), open_bracket.span)

    def branch(self) -> Branch:
        keyword = self.advance()
        open_bracket = self.advance()
        chains = [self.chain()]
        while self.token.kind == "PIPE":
            self.advance()
            chains.append(self.chain())
        self.closing(open_bracket, "RBRACK", "]")
        return Branch(keyword.text.upper(), chains, keyword.span)

    def input(self) -> Input:
        keyword = self.advance()
        shape_token = self.token
        if shape_token.kind == "SHAPE":
            self.advance()
            dims = tuple(whole_number(d, shape_token.span)
                         for d in shape_token.text.lower().split("x"))
            if len(dims) > 3:
                raise SpecError(
                    f"INPUT shape {shape_token.text} has {len(dims)} dimensions",
                    shape_token.span,
                    "write HxW (one channel) or HxWxC, e.g. 32x32x3",
                )
            if min(dims) <= 0:
                raise SpecError("INPUT dimensions must be positive", shape_token.span)
            return Input(dims, _joined(keyword.span, shape_token.span))
        if shape_token.kind == "NUMBER":
            raise SpecError(
                f"INPUT needs a shape like 28x28 or 32x32x3, found {shape_token.describe()}",
                shape_token.span,
            )
        return Input(None, keyword.span)

    def call(self) -> Call:
        word = self.advance()
        args: list[Arg] = []
        if self.token.kind != "LPAREN":
            return Call(word.text, args, word.span)
        open_paren = self.advance()
        if self.token.kind != "RPAREN":
            args.append(self.arg())
            while self.token.kind == "COMMA":
                self.advance()
                args.append(self.arg())
        close = self.closing(open_paren, "RPAREN", ")")
        return Call(word.text, args, _joined(word.span, close.span))

    def arg(self) -> Arg:
        token = self.token
        if token.kind == "WORD" and self.peek().kind == "EQUALS":
            self.advance()
            self.advance()
            value = self.value()
            return Arg(token.text.lower(), value.text, _joined(token.span, value.span))
        value = self.value()
        return Arg(None, value.text, value.span)

    def value(self) -> Token:
        if self.token.kind not in ("NUMBER", "WORD", "SHAPE", "SIDES"):
            raise SpecError(
                f"expected an option value, found {self.token.describe()}",
                self.token.span,
                "options look like (stride=2, pad=1) or (0.5)",
            )
        return self.advance()

    def closing(self, opener: Token, kind: str, char: str) -> Token:
        if self.token.kind != kind:
            raise SpecError(
                f"expected `{char}` to close the `{opener.text}` opened at line "
                f"{opener.span.line}, column {opener.span.col}; found {self.token.describe()}",
                self.token.span,
                f"add the missing `{char}`",
            )
        return self.advance()


def _joined(first: Span, last: Span) -> Span:
    """From the start of ``first`` to the end of ``last``; just ``first`` if ``last`` is on
    another line (a span is one line long)."""
    if last.line != first.line:
        return first
    return Span(first.line, first.col, last.col + last.length - first.col)
