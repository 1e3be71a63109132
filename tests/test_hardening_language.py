"""Specs written to break the reader: huge numbers, huge files, look-alike digits, bytes that
are not UTF-8, mutated reference specs.  Each ends in a SpecError (exit 1 in the CLI) or a
network, quickly, never in another exception or a hang."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import SpecError
from cnnkit.graph.build import load
from cnnkit.graph.layers import build_layer
from cnnkit.graph.network import Shape
from cnnkit.language.ast import Arg, Call
from cnnkit.language.errors import Span
from cnnkit.language.lexer import MAX_SOURCE_CHARS, tokenize

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.txt"))
# Generous for a loaded 2-core machine: what is bounded here takes a tenth of it or less,
# and what it guards against (a scan up to the stride, a quadratic lexer) takes minutes.
SECONDS = 2.0


def error(text: str, **kw) -> SpecError:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        cnnkit.parse(text, **kw)
    assert time.perf_counter() - start < SECONDS, text[:80]
    info.value.render()
    return info.value


# -- 1. huge strides and kernels: suggestions worked out, not searched for ------------------

@pytest.mark.parametrize("stride", [10**12, 10**30])
@pytest.mark.parametrize("layer", ["CONV11-96({}, pad=0)", "POOL3({})", "AVGPOOL2x3({})"])
def test_huge_stride_is_answered_at_once(layer, stride):
    e = error("INPUT 221x224x3 -> " + layer.format(f"stride={stride}"))
    assert "is not an integer" in e.message
    assert not re.search(r"[0-9]\.(?![0-9])", e.message), e.message  # no dangling `1.`
    assert re.search(r"= 1\.0+[1-9][0-9]* is not an integer", e.message)
    assert "(output 2)" in e.hint


def test_suggestions_for_a_huge_stride_work():
    e = error("INPUT 221x224x3 -> CONV11-96(stride=1000000000000, pad=0)")
    assert "(221 - 11 + 2*0)/1000000000000 + 1 = 1.0000000002" in e.message
    assert "11 (output 1) or 1000000000011 (output 2)" in e.hint
    net = cnnkit.parse("INPUT 1000000000011x224x3 -> CONV11-96(stride=1000000000000x1, pad=0)")
    assert net.nodes[1].out.h == 2


def test_huge_kernel_and_dilation():
    assert "pad=499999999998 (output 3)" in error(
        "INPUT 10x10x3 -> CONV1000000000000-8(stride=3)").hint
    assert "shrinks below one" in error(
        "INPUT 10x10x3 -> CONV3-8(dilation=1000000000000000000000000000000, pad=0)").message
    assert "shrinks below one" in error("INPUT 10x10x3 -> POOL1000000000000").message


def test_pad_suggestions_are_the_nearest_that_work():
    """Worked out, the suggestions are the ones a search finds; a pad is always smaller
    than the window (POOL2 refuses pad=2)."""
    for n in range(3, 20):
        for k in range(1, min(n, 7)):
            for stride in range(2, 7):
                text = f"INPUT {n}x{n}x1 -> POOL{k}(stride={stride})"
                try:
                    cnnkit.parse(text)
                    continue
                except SpecError as e:
                    hint = e.hint or ""
                pads = [p for p in range(k) if (n + 2 * p - k) % stride == 0 and n + 2 * p >= k]
                found = re.search(r"pad=([0-9]+)", hint)
                assert (int(found.group(1)) if found else None) == (pads[0] if pads else None)
                if found:
                    cnnkit.parse(f"INPUT {n}x{n}x1 -> POOL{k}(stride={stride}, pad={pads[0]})")
                for m in re.findall(r"(?:of|or) ([0-9]+) \(output", hint):
                    cnnkit.parse(f"INPUT {m}x{n}x1 -> POOL{k}(stride={stride}x1)")


# -- 2. the lexer is linear; a spec has a size limit ---------------------------------------

def test_blank_lines_are_linear():
    """40,000 blank lines before an error took 31 s (each newline looked ahead for the next
    token); now the run is one token, and line numbers stay exact."""
    e = error("INPUT 8x8x1 -> RELU" + "\n" * 100_000 + "-> FOO")
    assert e.message == "unknown layer `FOO`" and (e.span.line, e.span.col) == (100_001, 4)
    tokens = tokenize("INPUT 8x8x1\n\n  \n\n# a comment\n\nblk = RELU" + "\n" * 1000)
    assert [t.kind for t in tokens] == ["WORD", "SHAPE", "NEWLINE", "WORD", "EQUALS", "WORD",
                                        "EOF"]
    assert tokens[3].span == Span(7, 1, 3)


def fill(head: str, unit: str, tail: str = "", size: int = MAX_SOURCE_CHARS) -> str:
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


@pytest.mark.parametrize("text", [
    fill("INPUT 8x8x1 -> RELU", "\n", "-> FOO"),
    fill("INPUT 8x8x1 -> RELU\n", "# a comment line\n\n", "-> FOO"),
    fill("INPUT 8x8x1 -> ", " \t", "FOO"),
    fill("INPUT 8x8x1 -> ", "RELU -> ", "RELU"),
    fill("INPUT 8x8x1\n", "-> CONV3-4(stride=1, pad=1)\n"),
    fill("INPUT 8x8x1 -> ", "("),
    fill("INPUT 8x8x1 -> DROPOUT(", "1,", ")"),
    fill("INPUT 8x8x1 -> [RELU]*", "9"),
    fill("", "x = RELU\n"),
], ids=["blank", "comments", "spaces", "chain", "lines", "parens", "args", "digits", "blocks"])
def test_any_spec_up_to_the_limit_is_read_quickly(text):
    assert len(text) <= MAX_SOURCE_CHARS
    parse_or_spec_error(text)


def test_a_bigger_spec_is_refused_by_its_size():
    e = error("INPUT 8x8x1 -> RELU" + "\n" * (10 * 2**20))
    assert "the spec is 10.00 MB" in e.message and "limit of 128 KB" in e.message
    assert e.span is None and "error: the spec is" in e.render()
    assert len(cnnkit.parse(fill("INPUT 8x8x1 -> RELU", "\n")).nodes) == 2


def test_caret_line_is_the_lexers_line():
    """A form feed is a space to the lexer; the rendered line must not split at it."""
    e = error("INPUT 8x8x1 ->\x0c RELU -> FOO\r\n")
    assert e.render().split("\n")[1] == "   1 | INPUT 8x8x1 ->\x0c RELU -> FOO"


# -- 3. zero-sized windows --------------------------------------------------------------------

@pytest.mark.parametrize("layer", ["POOL0", "AVGPOOL0", "MAXPOOL0", "POOL0x10", "POOL3x0",
                                   "CONV0-4", "CONV3x0-4", "CONV3-0", "FC-0"])
def test_zero_sizes_are_spec_errors(layer):
    assert "at least" in error(f"INPUT 8x8x1 -> {layer}").message


# -- 4. files that are not UTF-8 --------------------------------------------------------------

def test_load_names_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "net.txt"
    path.write_bytes("INPUT 8x8x1\n-> CONVé3-4".encode() + b"\xff -> RELU\n")
    with pytest.raises(SpecError) as info:
        load(path)
    e = info.value
    assert "not UTF-8" in e.message and "0xff" in e.message
    assert e.filename == str(path) and (e.span.line, e.span.col) == (2, 12)  # characters
    assert e.render().startswith(f"{path}:2:12: error:")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.txt")
    path.write_text("INPUT 8x8x1 -> RELU", encoding="utf-8")
    assert load(path).filename == str(path)


# -- 5. only ASCII digits ---------------------------------------------------------------------

@pytest.mark.parametrize("text", ["INPUT ２８x28", "INPUT ٢٨x28", "INPUT 28x٢٨",
                                  "INPUT 8x8x1 -> CONV٣-4", "INPUT 8x8x1 -> CONV3-4(stride=٢)",
                                  "INPUT 8x8x1 -> DROPOUT(٠.5)", "INPUT 8x8x1 -> [RELU]*２",
                                  "INPUT 8x8x1 -> FC-１0"])
def test_look_alike_digits_are_not_numbers(text):
    assert "0-9" in error(text).hint


def test_layer_options_read_ascii_digits_only():
    """The layer rules do not rely on the lexer: their own patterns take 0-9 only."""
    for word, args in [("DROPOUT", [Arg(None, "٠.5", Span(1, 9))]),
                       ("CONV3-4", [Arg("stride", "٢", Span(1, 9))]),
                       ("LRN", [Arg(None, "٣", Span(1, 5))]),
                       ("CONV٣-4", [])]:
        with pytest.raises(SpecError):
            build_layer(Call(word, args, Span(1, 1, len(word))), Shape(8, 8, 1), "strict")
    with pytest.raises(ValueError):
        cnnkit.parse_shape("２８x28")
    assert "not a shape" in error("INPUT -> RELU", input_shape="٢٨x28").message


# -- 6. and 7. directives and groups ----------------------------------------------------------

def test_repeated_rounding_directive_names_both():
    e = error("@rounding floor\nINPUT 10x10x3 -> CONV3-8(stride=2, pad=0)\n  @rounding ceil\n")
    assert "`@rounding` is given twice (first at line 1, column 1)" in e.message
    assert e.span == Span(3, 3, len("@rounding ceil"))


def test_bare_group_points_at_the_block():
    e = error("INPUT 32x32x3\n-> [[CONV3-256 -> RELU]*3 -> POOL2]\n-> FC-10")
    assert e.span == Span(2, 4, len("[[CONV3-256 -> RELU]*3 -> POOL2]"))
    assert "bare group is not accepted" in e.message
    assert "]*1" in e.hint and "]*N" in e.hint and "RES[" in e.hint and "CAT[" in e.hint
    assert error("INPUT 8x8x1 -> [\n  RELU\n] -> FC-2").span == Span(1, 16, 1)


# -- huge numbers anywhere ------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("INPUT 8x8x1 -> [RELU]*" + "9" * 5000, "too large"),
    ("INPUT 8x8x1 -> FC-" + "9" * 5000, "too large"),
    ("INPUT 1" + "0" * 5000 + "x8", "too large"),
    ("INPUT 8x8x1 -> CONV3-4(pad=" + "9" * 5000 + ")", "too large"),
    ("INPUT 8x8x1 -> CONV3-4(stride=2x" + "9" * 5000 + ")", "too large"),
    ("INPUT 8x8x1 -> LRN(" + "9" * 5000 + ")", "too large"),
    ("INPUT 8x8x1 -> CONV3-4(groups=" + "9" * 40 + ")", "too large"),
    ("INPUT 8x8x1 -> CONV3-4(groups=1000000000000)", "must divide"),
    ("INPUT 8x8x1 -> [RELU]*1000000000000000000000000000000", "more than 100,000 layers"),
    ("INPUT 8x8x1 -> [[RELU]*0]*1000000000000", "steps to expand"),
    ("e0 = [RELU]*0\n" + "".join(f"e{i} = e{i - 1} -> e{i - 1}\n" for i in range(1, 60))
     + "INPUT 8x8x1 -> e59", "steps to expand"),
    ("INPUT 100000000000000000000x100000000000000000000x3", "at most 10**30"),
    ("INPUT 8x8x1 -> FC-1000000000000000000000000000000 -> FC-1000", None),
    ("double = CAT[ID | ID]\nINPUT 8x8x1 -> [double]*200", "at most 10**30"),
])
def test_huge_numbers_end_in_spec_errors(text, message):
    start = time.perf_counter()
    try:
        cnnkit.parse(text).summary().to_dict()
        assert message is None, text[:80]
    except SpecError as e:
        assert message is not None and message in e.message, e.message
    assert time.perf_counter() - start < SECONDS


def test_a_repeat_past_the_layer_limit_fails_after_one_pass():
    """Not after building 100,000 layers (a second on a loaded machine): the error points at
    the repeat."""
    e = error("blk = CONV3-4 -> BN -> RELU\nINPUT 8x8x1 -> [blk]*99999999")
    assert "more than 100,000 layers" in e.message and e.span == Span(2, 16, 1)
    assert len(cnnkit.parse("INPUT 8x8x1 -> [ID -> RELU]*49999 -> ID").nodes) == 100_000


def test_many_long_block_names_get_no_slow_guess():
    """difflib compared a 199-letter unknown word with 600 block names for 2-5 s; now no
    guess is tried, and the spec takes 0.03 s."""
    rng = random.Random(0)
    word, *names = ("A" + "".join(rng.choices("AB", k=198)) for _ in range(601))
    start = time.perf_counter()
    e = error(f"INPUT 8x8x1 -> {word}\n" + "".join(f"{name} = RELU\n" for name in names))
    assert time.perf_counter() - start < SECONDS / 2
    assert e.message.startswith("unknown layer")
    hint = error("INPUT 8x8x1 -> resblock\nresblok = ID").hint
    assert "did you mean the block `resblok`?" in hint


# -- 8. mutated reference specs ---------------------------------------------------------------

# without their comments, where most of their numbers are and mutations would change nothing
SOURCES = [re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8")) for path in SPECS]
NOISE = ["[", "]", "]*1", "]*0", "*", "RES[", "CAT[", "|", "(", ")", ",", "=", "->", "→",
         "×", "x", "-", "#", "@rounding ceil\n", "@rounding", "\n", "\n\n\n", "\r\n", "\t",
         "\x0c", "\ufeff", "٢", "２", "INPUT ", "INPUT 8x8x1 -> ", "stride=", "pad=same",
         "groups=", "dilation=", "round=ceil", "e9", ".5", "1e400", "nan", "inf"]
HUGE = ["0", "1", "2", "-1", "07", "1000000000000", "1" + "0" * 30, "1" + "0" * 31,
        "9" * 400, "9" * 5000]


@st.composite
def mutated_specs(draw):
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "duplicate line", "drop line", "swap",
                                   "number", "unicode"]))
        pos = draw(st.integers(0, len(text)))
        lines = text.split("\n")
        line = draw(st.integers(0, len(lines) - 1))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(NOISE)) + text[pos:]
        elif op == "unicode":
            text = text[:pos] + draw(st.text(min_size=1, max_size=3)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)):]
        elif op == "duplicate line":
            text = "\n".join(lines[:line + 1] + lines[line:])
        elif op == "drop line":
            text = "\n".join(lines[:line] + lines[line + 1:])
        elif op == "swap":
            words = re.split(r"(\s+)", text)
            i, j = draw(st.integers(0, len(words) - 1)), draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
            text = "".join(words)
        else:
            numbers = list(re.finditer(r"[0-9]+", text))
            if numbers:
                number = numbers[draw(st.integers(0, len(numbers) - 1))]
                text = text[:number.start()] + draw(st.sampled_from(HUGE)) + text[number.end():]
    return text


def parse_or_spec_error(text: str) -> None:
    """What the CLI does with a spec: parse it, and render the error if there is one."""
    start = time.perf_counter()
    try:
        cnnkit.parse(text)
    except SpecError as e:
        e.render()
    assert time.perf_counter() - start < SECONDS


@settings(max_examples=1000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_specs())
def test_mutated_specs_end_in_a_network_or_a_spec_error(text):
    parse_or_spec_error(text)
