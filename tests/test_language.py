"""The grammar: every form the issue names parses to the right graph, and each mistake
gets its own message with a position."""

import pytest

import cnnkit
from cnnkit import SpecError


def kinds(text, **kw):
    return [n.kind for n in cnnkit.parse(text, **kw).nodes]


def shapes(text, **kw):
    return [str(n.out) for n in cnnkit.parse(text, **kw).nodes]


def error(text, **kw) -> SpecError:
    with pytest.raises(SpecError) as info:
        cnnkit.parse(text, **kw)
    return info.value


def test_issue_example():
    net = cnnkit.parse("INPUT 32x32x3 -> [CONV3-64 -> RELU]*2 -> POOL2 -> FC-10")
    assert [n.name for n in net.nodes] == [
        "INPUT", "CONV3-64", "RELU", "CONV3-64", "RELU", "POOL2", "FC-10"]
    assert str(net.output_shape) == "10"
    assert net.nodes[-1].out.flat


def test_comments_case_and_continuation_lines():
    text = """# a comment
    input 28x28   # one channel
    -> conv5-6(PAD=0) ->
    relu
    -> Pool2
    """
    assert shapes(text) == ["28x28x1", "24x24x6", "24x24x6", "12x12x6"]


def test_unicode_arrow_and_times():
    assert shapes("INPUT 8x8x1 → [RELU]×2") == ["8x8x1"] * 3


def test_input_from_command_line():
    assert shapes("INPUT -> CONV3-4", input_shape="16x16x3") == ["16x16x3", "16x16x4"]
    assert shapes("INPUT 8x8 -> CONV3-4", input_shape=(16, 16, 3))[0] == "16x16x3"
    e = error("INPUT -> CONV3-4")
    assert "INPUT has no shape" in e.message and "--input" in e.hint


def test_conv_forms_and_options():
    net = cnnkit.parse("INPUT 32x32x8 -> CONV3x5-16(stride=2, pad=same, dilation=1, groups=2, "
                       "bias=false)")
    conv = net.nodes[1]
    assert conv.attrs["kernel"] == (3, 5) and conv.attrs["groups"] == 2
    assert conv.attrs["bias"] is False and str(conv.out) == "16x16x16"


def test_default_pad_keeps_size_for_odd_kernels():
    assert shapes("INPUT 32x32x3 -> CONV5-8 -> CONV3-8 -> CONV1-8")[1:] == ["32x32x8"] * 3
    # even kernels: floor((2-1)/2) = 0
    assert shapes("INPUT 32x32x3 -> CONV2-8(round=floor)")[1] == "31x31x8"


def test_same_padding_is_asymmetric_for_even_kernels():
    conv = cnnkit.parse("INPUT 32x32x3 -> CONV2-16(pad=same)").nodes[1]
    assert conv.attrs["pad"] == (0, 1, 0, 1) and str(conv.out) == "32x32x16"
    conv = cnnkit.parse("INPUT 7x7x3 -> CONV3-4(stride=2, pad=same)").nodes[1]
    assert str(conv.out) == "4x4x4" and conv.attrs["pad"] == (1, 1, 1, 1)
    conv = cnnkit.parse("INPUT 8x8x3 -> CONV3-4(stride=2, pad=same)").nodes[1]
    assert str(conv.out) == "4x4x4" and conv.attrs["pad"] == (0, 1, 0, 1)


def test_pad_valid_and_dilation():
    assert shapes("INPUT 9x9x1 -> CONV3-2(pad=valid)")[1] == "7x7x2"
    # effective kernel 2*(3-1)+1 = 5, default pad keeps the size
    assert shapes("INPUT 9x9x1 -> CONV3-2(dilation=2)")[1] == "9x9x2"
    assert shapes("INPUT 9x9x1 -> CONV3-2(dilation=2, pad=0)")[1] == "5x5x2"


def test_pooling_forms():
    assert shapes("INPUT 8x8x3 -> POOL2 -> MAXPOOL2 -> AVGPOOL2")[1:] == [
        "4x4x3", "2x2x3", "1x1x3"]
    net = cnnkit.parse("INPUT 8x8x3 -> AVGPOOL3(stride=1, pad=1) -> GAP")
    assert net.nodes[1].attrs["mode"] == "avg" and str(net.nodes[1].out) == "8x8x3"
    assert str(net.nodes[2].out) == "1x1x3"


def test_fc_forms_flatten_and_activations():
    assert kinds("INPUT 4x4x2 -> FLATTEN -> FC10 -> LRELU(0.1) -> TANH -> SIGMOID -> "
                 "DROPOUT(0.3) -> BN -> FC-3(bias=false) -> SOFTMAX") == [
        "input", "flatten", "fc", "lrelu", "tanh", "sigmoid", "dropout", "bn", "fc", "softmax"]
    net = cnnkit.parse("INPUT 4x4x2 -> LRN(3) -> DROPOUT(p=0.2) -> LRELU(alpha=0.2)")
    assert net.nodes[1].attrs["size"] == 3 and net.nodes[2].attrs["p"] == 0.2
    assert net.nodes[3].attrs["alpha"] == 0.2


def test_nested_repeat_and_zero_count():
    net = cnnkit.parse("INPUT 224x224x3 -> [[CONV3-64 -> RELU]*2 -> POOL2]*2")
    assert [n.name for n in net.nodes].count("CONV3-64") == 4
    assert str(net.output_shape) == "56x56x64"
    assert shapes("INPUT 8x8x1 -> [CONV3-4]*0 -> FC-2") == ["8x8x1", "2"]


def test_res_identity_and_projection_shortcut():
    net = cnnkit.parse("INPUT 8x8x4 -> RES[CONV3-4 -> RELU -> CONV3-4] -> RELU")
    add = net.nodes[4]
    assert add.kind == "add" and add.inputs == (3, 0)
    net = cnnkit.parse("INPUT 9x9x4 -> RES[CONV3-8(stride=2) | CONV1-8(stride=2)]")
    assert [n.name for n in net.nodes] == ["INPUT", "CONV3-8", "shortcut/CONV1-8", "RES"]
    assert net.nodes[3].inputs == (1, 2) and str(net.output_shape) == "5x5x8"


def test_cat_concatenates_channels():
    net = cnnkit.parse("INPUT 8x8x4 -> CAT[ID | CONV3-2 | POOL3(stride=1, pad=1) -> CONV1-3]")
    assert str(net.output_shape) == "8x8x9"
    assert net.nodes[-1].inputs == (1, 2, 4)
    assert [n.name for n in net.nodes][1:4] == ["b1/ID", "b2/CONV3-2", "b3/POOL3"]


def test_densenet_style_cat():
    assert str(cnnkit.parse("INPUT 8x8x16 -> CAT[ ID | BN -> RELU -> CONV3-32 ]")
               .output_shape) == "8x8x48"


def test_named_blocks_get_fresh_layers_and_paths():
    text = """
    INPUT 8x8x4 -> res -> res -> GAP
    res = RES[CONV3-4 -> RELU -> CONV3-4] -> RELU
    """
    names = [n.name for n in cnnkit.parse(text).nodes]
    assert "res.1/CONV3-4" in names and "res.2/CONV3-4" in names
    assert names.count("res.1/CONV3-4") == 2 and names.count("res.2/RES") == 1


def test_multiline_brackets():
    text = """INPUT 8x8x4 -> CAT[
        CONV1-2 |
        CONV3-2
    ] -> RELU"""
    assert str(cnnkit.parse(text).output_shape) == "8x8x4"


def test_rounding_directive_cli_override_and_per_layer():
    strict = "INPUT 10x10x3 -> CONV3-8(stride=2, pad=0)"
    assert shapes("@rounding floor\n" + strict)[1] == "4x4x8"
    assert shapes("@rounding ceil\n" + strict)[1] == "5x5x8"
    assert shapes(strict, rounding="floor")[1] == "4x4x8"
    assert shapes("@rounding ceil\n" + strict, rounding="floor")[1] == "4x4x8"
    assert shapes("INPUT 10x10x3 -> CONV3-8(stride=2, pad=0, round=ceil)")[1] == "5x5x8"


def test_ceil_rounding_grows_bottom_right_padding():
    pool = cnnkit.parse("INPUT 112x112x64 -> MAXPOOL3(stride=2, round=ceil)").nodes[1]
    assert str(pool.out) == "56x56x64" and pool.attrs["pad"] == (0, 1, 0, 1)


def test_ceil_never_starts_a_window_in_padding_only():
    # PyTorch ceil_mode rule: (5 + 2*1 - 2)/2 + 1 = 3.5 -> 4, but the 4th window would start
    # at 6, past the input plus the left padding (1 + 5 = 6), so the output stays 3.
    pool = cnnkit.parse("INPUT 5x5x1 -> POOL2(stride=2, pad=1, round=ceil)").nodes[1]
    assert str(pool.out) == "3x3x1"


# -- errors ------------------------------------------------------------------------------

def test_non_integer_size_explains_and_suggests():
    e = error("INPUT 10x10x3 -> CONV3-8(stride=2, pad=0)")
    assert "(10 - 3 + 2*0)/2 + 1 = 4.5 is not an integer" in e.message
    assert (e.span.line, e.span.col) == (1, 18)
    assert "11 (output 5)" in e.hint and "9 (output 4)" in e.hint
    assert "@rounding floor" in e.hint and "drops the last 1 row" in e.hint


def test_suggested_pad_really_works():
    e = error("INPUT 10x10x3 -> CONV4-8(stride=4, pad=0)")
    assert "pad=1 (output 3)" in e.hint
    assert shapes("INPUT 10x10x3 -> CONV4-8(stride=4, pad=1)")[1] == "3x3x8"


def test_alexnet_224_vs_227():
    e = error("INPUT 224x224x3 -> CONV11-96(stride=4, pad=0)")
    assert "54.25" in e.message and "227 (output 55)" in e.hint
    summary = cnnkit.parse("INPUT 227x227x3 -> CONV11-96(stride=4, pad=0)").summary()
    assert summary.rows[1].output == "55x55x96" and summary.params == 34_944


def test_error_rendering_has_file_line_caret_and_hint():
    with pytest.raises(SpecError) as info:
        cnnkit.parse("INPUT 8x8x1\n-> CONV3-4 -> FOO", filename="net.txt")
    text = info.value.render()
    lines = text.splitlines()
    assert lines[0].startswith("net.txt:2:15: error: unknown layer `FOO`")
    assert lines[1].endswith("-> CONV3-4 -> FOO")
    assert lines[2].index("^") == lines[1].index("FOO")


@pytest.mark.parametrize("text, message, hint", [
    ("INPUT 8x8x1 -> CONVV3-4", "unknown layer `CONVV3-4`", "did you mean `CONV3-4`?"),
    ("INPUT 8x8x1 -> RELLU", "unknown layer", "did you mean `RELU"),
    ("INPUT 8x8x1 -> CONV3", "unknown layer", "filter count"),
    ("INPUT 8x8x1 -> [CONV3-4 -> RELU*2", "expected `]` to close the `[` opened at line 1",
     "missing `]`"),
    ("INPUT 8x8x1 -> [CONV3-4]*-1", "whole number >= 0", None),
    ("INPUT 8x8x1 -> [CONV3-4]*1.5", "whole number >= 0", None),
    ("INPUT 8x8x1 -> [CONV3-4]", "needs a repeat count", None),
    ("INPUT 8x8x1 -> RELU(alpha=2)", "RELU has no option `alpha`", "takes no options"),
    ("INPUT 8x8x1 -> CONV3-4(strid=2)", "no option `strid`", "did you mean `stride`?"),
    ("INPUT 8x8x1 -> CONV3-4(stride=0)", "must be a whole number >= 1", None),
    ("INPUT 8x8x1 -> CONV3-4(bias=maybe)", "one of true, false", None),
    ("INPUT 8x8x1 -> DROPOUT(1.5)", "must be in [0.0, 1.0)", None),
    ("INPUT 4x4x1 -> POOL2 -> POOL2 -> POOL2", "shrinks below one", None),
    ("INPUT 4x4x1 -> CONV9-2(pad=0)", "shrinks below one", None),
    ("FC-10 -> INPUT 8x8x1", "must start with INPUT", "INPUT HxWxC"),
    ("INPUT 8x8x1 -> INPUT 8x8x1", "INPUT can only start", None),
    ("INPUT 8x8x4 -> RES[CONV3-8]", "cannot add its main path (8x8x8) to its shortcut (8x8x4)",
     "CONV1-8"),
    ("INPUT 8x8x4 -> CAT[CONV3-4 | POOL2]", "same height and width", None),
    ("INPUT 8x8x4 -> FC-4 -> CONV3-4", "needs an image-shaped input", None),
    ("INPUT 8x8x4 -> CONV3-6(groups=4)", "groups=4 must divide", None),
    ("INPUT 8x8x1\nINPUT 8x8x1", "starts a second chain", "->"),
    ("INPUT 8x8x1 -> b\nb = b", "uses itself", None),
    ("INPUT 8x8x1 -> RES[ID | ID | ID]", "at most one shortcut", None),
    ("INPUT 8x8x1 -> CONV3-4 $", "unexpected character `$`", None),
    ("@rounding sideways\nINPUT 8x8x1", "takes one of strict, floor, ceil", None),
    ("@padding 1\nINPUT 8x8x1", "unknown directive", None),
    ("# only a comment", "has no network", None),
    ("INPUT 8x8x1 -> ", "expected a layer", None),
    ("INPUT 8x8x1x2x3", "has 5 dimensions", None),
    ("INPUT 8x8x1 -> RES -> RELU", "needs its branches in brackets", None),
    ("INPUT 8x8x1 -> CONV3-4(stride=1, stride=2)", "given twice", None),
    ("INPUT 8x8x1 -> blk\nblk = RELU\nblk = TANH", "defined twice", None),
    ("INPUT 8x8x1 -> resblock\nresblok = RELU", "unknown layer `resblock`",
     "did you mean the block `resblok`?"),
])
def test_each_mistake_has_its_own_message(text, message, hint):
    e = error(text)
    assert message in e.message
    assert e.span is not None
    if hint:
        assert hint in (e.hint or "")


def test_bad_command_line_shape_and_rounding():
    assert "not a shape" in error("INPUT -> RELU", input_shape="32by32").message
    assert "rounding must be one of" in error("INPUT 8x8x1", rounding="up").message


def test_runaway_repeats_and_nesting_are_errors_not_hangs():
    assert "more than 100,000 layers" in error("INPUT 8x8x1 -> [RELU]*999999999").message
    deep = "INPUT 8x8x1 -> " + "[" * 400 + "RELU" + "]*1" * 400
    assert "nested too deeply" in error(deep).message
