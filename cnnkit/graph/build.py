"""From syntax tree to checked layer graph: expands repeats and named blocks, wires
branches, and computes every shape (each failure points at the text that caused it)."""

from __future__ import annotations

import re
from pathlib import Path

from ..language.ast import Branch, Call, Chain, Input, Program, Repeat
from ..language.errors import Span, SpecError
from ..language.lexer import MAX_DIGITS, MAX_NUMBER
from ..language.parser import parse_program
from .layers import build_layer, unknown_word
from .network import Network, Node, Shape
from .sizes import ROUNDINGS

MAX_LAYERS = 100_000  # a guard against `[ ... ]*999999999`, far above any real network
# elements expanded (layers, repeats, block uses): a guard against blocks that double
# blocks that expand to nothing, which add no layers to count
MAX_STEPS = 2 * MAX_LAYERS


def parse_shape(text: str) -> tuple[int, int, int]:
    """``32x32x3`` or ``28x28`` (one channel) -> (H, W, C)."""
    digits = f"([0-9]{{1,{MAX_DIGITS}}})"  # longer: too large, and slow to convert
    match = re.fullmatch(rf"\s*{digits}\s*[xX]\s*{digits}\s*(?:[xX]\s*{digits})?\s*", text,
                         re.ASCII)
    if not match or min(int(g) for g in match.groups() if g) < 1:
        raise ValueError(f"`{text}` is not a shape; write HxWxC like 32x32x3, or HxW like 28x28")
    h, w, c = match.groups()
    return int(h), int(w), int(c or 1)


def parse(
    source: str, *, filename: str = "<spec>", input_shape: str | tuple | None = None,
    rounding: str | None = None,
) -> Network:
    """Parse a spec and check its shapes.

    ``input_shape`` fills in (or overrides) the INPUT shape; ``rounding`` overrides the
    file's ``@rounding`` directive.  Raises ``SpecError`` with the position of the problem.
    """
    try:
        program = parse_program(source)
        nodes = _Builder(program, input_shape, rounding).build()
    except SpecError as error:
        raise error.located(filename, source) from None
    except RecursionError:
        raise SpecError("brackets or blocks are nested too deeply").located(
            filename, source) from None
    return Network(nodes, source=source, filename=filename)


def load(path, **options) -> Network:
    """Parse a spec file (``options`` as for ``parse``)."""
    return parse(read_source(path), filename=str(path), **options)


def read_source(path) -> str:
    """The text of a spec file.  One that is not UTF-8 is a ``SpecError`` that names it and
    points at the first bad byte; a missing or unreadable one raises its ``OSError``."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        span = Span(data.count(b"\n", 0, error.start) + 1,
                    len(data[line_start:error.start].decode("utf-8")) + 1)
        raise SpecError(
            f"the file is not UTF-8 text: byte 0x{data[error.start]:02x} cannot be read",
            span, "save the spec as UTF-8",
        ).located(str(path), data.decode("utf-8", errors="replace")) from None


class _Builder:
    def __init__(self, program: Program, input_shape, rounding: str | None):
        self.program = program
        if isinstance(input_shape, str):
            try:
                input_shape = parse_shape(input_shape)
            except ValueError as error:
                raise SpecError(str(error)) from None
        self.input_override = input_shape
        directive = program.directives.get("rounding")
        if rounding is not None and rounding not in ROUNDINGS:
            raise SpecError(f"rounding must be one of {', '.join(ROUNDINGS)}, not `{rounding}`")
        self.rounding = rounding or (directive.value if directive else "strict")
        self.nodes: list[Node] = []
        self.steps = 0
        self.uses: dict[str, int] = {}
        self.expanding: list[str] = []

    def build(self) -> list[Node]:
        chain = self.program.chain
        if chain is None:
            raise SpecError(
                "the spec has no network",
                Span(1, 1),
                "write a chain such as `INPUT 28x28 -> CONV5-32 -> RELU -> POOL2 -> FC-10`",
            )
        first = chain.elements[0]
        if not isinstance(first, Input):
            span = first.span
            raise SpecError(
                "the network must start with INPUT",
                span,
                "begin the chain with `INPUT HxWxC ->`, e.g. `INPUT 28x28x1 -> ...`",
            )
        self._input(first)
        self._chain(Chain(chain.elements[1:], chain.span), 0, "")
        return self.nodes

    def _input(self, element: Input) -> None:
        dims = self.input_override or element.shape
        if dims is None:
            raise SpecError(
                "INPUT has no shape",
                element.span,
                "write it in the spec (`INPUT 32x32x3`) or give it on the command line "
                "(`--input 32x32x3`)",
            )
        h, w, c = (*dims, 1)[:3] if len(dims) == 2 else dims
        self._add("INPUT", "input", (), Shape(h, w, c), {}, element.span)

    def _add(self, name, kind, inputs, out, attrs, span, explain=()) -> int:
        if len(self.nodes) >= MAX_LAYERS:
            raise _too_many_layers(span)
        if out.size > MAX_NUMBER:
            raise SpecError(f"{name}: the volume {out} holds {out.size:.3g} values; a tensor "
                            "may hold at most 10**30", span, "check the sizes and channel counts")
        self.nodes.append(Node(len(self.nodes), name, kind, tuple(inputs), out, attrs, span,
                               tuple(explain)))
        return len(self.nodes) - 1

    def _chain(self, chain: Chain, current: int, prefix: str) -> int:
        for element in chain.elements:
            current = self._element(element, current, prefix)
        return current

    def _element(self, element, current: int, prefix: str) -> int:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _too_many_steps(element.span)
        if isinstance(element, Input):
            raise SpecError("INPUT can only start the network", element.span,
                            "remove this INPUT, or move it to the start of the chain")
        if isinstance(element, Repeat):
            return self._repeat(element, current, prefix)
        if isinstance(element, Branch):
            return self._branch(element, current, prefix)
        return self._call(element, current, prefix)

    def _repeat(self, repeat: Repeat, current: int, prefix: str) -> int:
        """Every pass adds as many layers and takes as many steps as the first, so a count
        that would pass a limit fails after one pass, not after 100,000 layers."""
        if repeat.count == 0:
            return current
        layers, steps = len(self.nodes), self.steps
        current = self._chain(repeat.body, current, prefix)
        passes_left = repeat.count - 1
        if len(self.nodes) + (len(self.nodes) - layers) * passes_left > MAX_LAYERS:
            raise _too_many_layers(repeat.span)
        if self.steps + (self.steps - steps) * passes_left > MAX_STEPS:
            raise _too_many_steps(repeat.span)
        for _ in range(passes_left):
            current = self._chain(repeat.body, current, prefix)
        return current

    def _call(self, call: Call, current: int, prefix: str) -> int:
        definition = self.program.definitions.get(call.word)
        if definition is not None:
            if call.args:
                raise SpecError(f"block `{call.word}` takes no options", call.span)
            if call.word in self.expanding:
                raise SpecError(f"block `{call.word}` uses itself", call.span,
                                "a block cannot contain itself; write the layers out")
            self.uses[call.word] = self.uses.get(call.word, 0) + 1
            self.expanding.append(call.word)
            current = self._chain(definition.chain, current, f"{prefix}{call.word}.{self.uses[call.word]}/")
            self.expanding.pop()
            return current
        shape = self.nodes[current].out
        if call.word.upper() in ("RES", "CAT"):
            raise SpecError(f"{call.word.upper()} needs its branches in brackets", call.span,
                            f"write {call.word.upper()}[ main | other ]")
        try:
            built = build_layer(call, shape, self.rounding)
        except SpecError as error:
            if error.message.startswith("unknown layer"):
                raise unknown_word(call, self.program.definitions) from None
            raise
        return self._add(prefix + call.word.upper(), built.kind, (current,), built.out,
                         built.attrs, call.span, built.explain)

    def _branch(self, branch: Branch, current: int, prefix: str) -> int:
        chains = branch.chains
        if branch.kind == "RES" and len(chains) > 2:
            raise SpecError("RES takes a main chain and at most one shortcut", branch.span,
                            "write RES[ main ] or RES[ main | shortcut ]")
        labels = ["", "shortcut/"] if branch.kind == "RES" else [f"b{i + 1}/" for i in range(len(chains))]
        ends = [self._chain(chain, current, prefix + label) for chain, label in zip(chains, labels)]
        if branch.kind == "RES" and len(ends) == 1:
            ends.append(current)
        shapes = [self.nodes[end].out for end in ends]
        out = self._merged_shape(branch, shapes)
        return self._add(prefix + branch.kind, "add" if branch.kind == "RES" else "concat", ends,
                         out, {}, branch.span)

    def _merged_shape(self, branch: Branch, shapes: list[Shape]) -> Shape:
        listed = " and ".join(str(s) for s in shapes)
        if branch.kind == "RES":
            main, shortcut = shapes
            if main != shortcut:
                stride = max(1, shortcut.h // max(main.h, 1))
                raise SpecError(
                    f"RES cannot add its main path ({main}) to its shortcut ({shortcut})",
                    branch.span,
                    "give the block a shortcut that matches, e.g. "
                    f"RES[ ... | CONV1-{main.c}(stride={stride}) ]" if not main.flat else
                    "both paths must end with the same shape",
                )
            return main
        if any(s.flat for s in shapes):
            if all(s.flat for s in shapes):
                return Shape(1, 1, sum(s.c for s in shapes), True)
            raise SpecError(f"CAT cannot join flat vectors with image volumes ({listed})",
                            branch.span)
        if len({(s.h, s.w) for s in shapes}) > 1:
            raise SpecError(
                f"CAT joins along channels, so every branch needs the same height and width; "
                f"got {listed}",
                branch.span,
                "adjust strides or padding so the branches keep the same spatial size "
                "(pad=same keeps it at stride 1)",
            )
        return Shape(shapes[0].h, shapes[0].w, sum(s.c for s in shapes))


def _too_many_layers(span: Span) -> SpecError:
    return SpecError(f"the network expands to more than {MAX_LAYERS:,} layers", span,
                     "check the repeat counts")


def _too_many_steps(span: Span) -> SpecError:
    return SpecError(f"the network takes more than {MAX_STEPS:,} steps to expand", span,
                     "check the repeat counts and the blocks that use blocks")
