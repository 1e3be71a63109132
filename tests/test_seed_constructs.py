"""The constructs of the course documents (issue 12), against the documents' own numbers.

Seed 003 (SAS Deep Learning): 1-D convolution of [2, 4, 6, 1, 5, 3, 2] by [2, -1, 0.1]
with and without padding, the 1x4 filter padded one left and two right, the even filter
padded padLeft=0/padRight=1, and 1x3 pooling windows that shrink at the right border;
the sentence CNN's 1-max pooling (global max pooling).  Seed 002 (Scratch CNN): 1-D
convolution with padding and stride.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_gradients import check_layer, random_input

import cnnkit
from cnnkit.engine.layers import make_layer
from cnnkit.engine.model import Model
from cnnkit.language.errors import SpecError

SEQUENCE = [2, 4, 6, 1, 5, 3, 2]


def forward_1d(spec: str, values, weights=None) -> np.ndarray:
    """The output row of a one-channel 1xW network on ``values``, in float64, its one
    convolution (if any) given the filter ``weights`` and no bias."""
    network = cnnkit.parse(spec)
    model = Model(network, dtype="float64")
    for layer in model.layers:
        if "W" in layer.params:
            layer.params["W"][...] = np.asarray(weights, np.float64).reshape(layer.params["W"].shape)
            layer.params["b"][...] = 0
    x = np.asarray(values, np.float64).reshape(1, 1, -1, 1)
    return model.forward(x, train=False).reshape(-1)


def dot(products_per_pixel) -> list[float]:
    """Each output pixel as the seed works it out: the sum of its element-wise products."""
    return [float(np.sum(products)) for products in products_per_pixel]


# -- 1-D convolution (seed 003's worked example; seed 002's exercises) -------------------


def test_1d_convolution_without_padding():
    out = forward_1d("INPUT 1x7 -> CONV1x3-1(pad=0)", SEQUENCE, [2, -1, 0.1])
    seed = [[4, -4, 0.6], [8, -6, 0.1], [12, -1, 0.5], [2, -5, 0.3], [10, -3, 0.2]]
    np.testing.assert_allclose(out, dot(seed), rtol=0, atol=1e-12)


def test_1d_convolution_padded_by_one_keeps_the_size():
    out = forward_1d("INPUT 1x7 -> CONV1x3-1(pad=0x1)", SEQUENCE, [2, -1, 0.1])
    seed = [[0, -2, 0.4], [4, -4, 0.6], [8, -6, 0.1], [12, -1, 0.5], [2, -5, 0.3],
            [10, -3, 0.2], [6, -2, 0]]
    np.testing.assert_allclose(out, dot(seed), rtol=0, atol=1e-12)


def test_1d_convolution_with_stride_two():
    out = forward_1d("INPUT 1x7 -> CONV1x3-1(pad=0, stride=1x2)", SEQUENCE, [2, -1, 0.1])
    np.testing.assert_allclose(out, dot([[4, -4, 0.6], [12, -1, 0.5], [10, -3, 0.2]]),
                               rtol=0, atol=1e-12)


def test_even_filter_padded_one_left_and_two_right():
    """The 1x4 filter [2, -1, 0.1, 5] on the 1x7 input padded to [0, 2, ..., 2, 0, 0]."""
    out = forward_1d("INPUT 1x7 -> CONV1x4-1(pad=0x1:2)", SEQUENCE, [2, -1, 0.1, 5])
    seed = [[0, -2, 0.4, 30], [4, -4, 0.6, 5], [8, -6, 0.1, 25], [12, -1, 0.5, 15],
            [2, -5, 0.3, 10], [10, -3, 0.2, 0], [6, -2, 0, 0]]
    np.testing.assert_allclose(out, dot(seed), rtol=0, atol=1e-12)


@pytest.mark.parametrize("values, padded_output", [
    ([1, 2, 3, 4, 5], [5, 8, 11, 14, 5]),  # [1, 2, 3, 4, 5, 0]: 1x5 stays 1x5
    ([1, 2, 3, 4], [5, 8, 11, 4]),  # [1, 2, 3, 4, 0]: 1x4 stays 1x4
])
def test_sas_pad_left_0_pad_right_1(values, padded_output):
    out = forward_1d(f"INPUT 1x{len(values)} -> CONV1x2-1(pad=0x0:1)", values, [1, 2])
    np.testing.assert_array_equal(out, padded_output)


def test_a_square_filter_on_a_1d_input_suggests_the_1d_one():
    with pytest.raises(SpecError) as caught:
        cnnkit.parse("INPUT 1x7 -> CONV3-8 -> RELU")
    assert "one-row input" in caught.value.message
    assert "`CONV1x3-8`" in caught.value.hint
    with pytest.raises(SpecError) as caught:
        cnnkit.parse("INPUT 1x8 -> CONV1x3-4 -> POOL2")
    assert "`POOL1x2`" in caught.value.hint


# -- asymmetric padding ------------------------------------------------------------------


@pytest.mark.parametrize("pad, sides", [
    ("1", (1, 1, 1, 1)), ("1x2", (1, 1, 2, 2)), ("0:1", (0, 1, 0, 1)),
    ("0x1:2", (0, 0, 1, 2)), ("1:0x2", (1, 0, 2, 2)), ("0:1x2:3", (0, 1, 2, 3)),
])
def test_pad_forms(pad, sides):
    node = cnnkit.parse(f"INPUT 9x9 -> CONV4-2(pad={pad}, round=floor)").nodes[1]
    assert node.attrs["pad"] == sides


def test_asymmetric_padding_is_explained_per_side():
    node = cnnkit.parse("INPUT 1x7 -> CONV1x4-1(pad=0x1:2)").nodes[1]
    assert node.out.w == 7
    assert "width (7 - 4 + 1 + 2)/1 + 1 = 7" in node.explain


def test_a_size_that_does_not_divide_suggests_padding_one_side():
    with pytest.raises(SpecError) as caught:
        cnnkit.parse("INPUT 224x224x3 -> CONV3-8(stride=2, pad=0)")
    assert "0:1 padding on the height" in caught.value.hint
    assert cnnkit.parse("INPUT 224x224x3 -> CONV3-8(stride=2, pad=0:1)").nodes[1].out.h == 112


@pytest.mark.parametrize("pad", ["0:1:2", "1x2x3", "a:1"])
def test_malformed_padding_is_an_error(pad):
    with pytest.raises(SpecError):
        cnnkit.parse(f"INPUT 9x9 -> CONV3-2(pad={pad})")


# -- pooling windows that shrink at the border ---------------------------------------------


def test_max_pool_windows_shrink_at_the_border():
    out = forward_1d("INPUT 1x7 -> MAXPOOL1x3(stride=1, pad=0x0:2)", SEQUENCE)
    np.testing.assert_array_equal(out, [6, 6, 6, 5, 5, 3, 2])


def test_mean_pool_divides_the_last_windows_by_two_and_one():
    out = forward_1d("INPUT 1x7 -> AVGPOOL1x3(stride=1, pad=0x0:2, count_pad=false)", SEQUENCE)
    windows = [[2, 4, 6], [4, 6, 1], [6, 1, 5], [1, 5, 3], [5, 3, 2], [3, 2], [2]]
    np.testing.assert_allclose(out, [sum(w) / len(w) for w in windows], rtol=1e-15)


def test_mean_pool_counts_written_padding_by_default():
    """PyTorch's count_include_pad=True: the zeros are part of each average."""
    out = forward_1d("INPUT 1x7 -> AVGPOOL1x3(stride=1, pad=0x0:2)", SEQUENCE)
    np.testing.assert_allclose(out[-2:], [5 / 3, 2 / 3], rtol=1e-15)


def test_count_pad_belongs_to_average_pooling():
    with pytest.raises(SpecError, match="average pooling only"):
        cnnkit.parse("INPUT 1x7 -> MAXPOOL1x3(stride=1, pad=0x0:2, count_pad=false)")


# -- global max pooling --------------------------------------------------------------------


def test_gmp_keeps_the_largest_value_of_each_map():
    network = cnnkit.parse("INPUT 6x1x3 -> GMP")
    assert (network.nodes[1].kind, str(network.nodes[1].out)) == ("gmp", "1x1x3")
    x = random_input(network.input_shape)
    y = Model(network, dtype="float64").forward(x, train=False)
    np.testing.assert_array_equal(y, x.max(axis=(1, 2), keepdims=True))
    assert network.summary().params == network.summary().macs == 0


def test_gmp_needs_an_image():
    with pytest.raises(SpecError, match="image-shaped"):
        cnnkit.parse("INPUT 4x4x2 -> FC-3 -> GMP")


# -- gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    "INPUT 3x4x2 -> GMP",
    "INPUT 1x7x2 -> AVGPOOL1x3(stride=1, pad=0x0:2, count_pad=false)",
    "INPUT 5x6x2 -> AVGPOOL3(stride=2, pad=1:0x0:2, count_pad=false, round=ceil)",
    "INPUT 1x7x2 -> MAXPOOL1x3(stride=1, pad=0x1:2)",
    "INPUT 1x7x2 -> CONV1x4-3(pad=0x1:2)",
    "INPUT 5x5x2 -> CONV2-3(stride=2, pad=0:1)",
])
def test_gradients(spec):
    network = cnnkit.parse(spec)
    node = network.nodes[1]
    layer = make_layer(node, [network.input_shape], np, "float64")
    rng = np.random.default_rng(2)
    for param in layer.params.values():
        param[...] = rng.standard_normal(param.shape)
    check_layer(layer, [random_input(network.input_shape)])


# -- export and import -----------------------------------------------------------------------

EXPORTED = {
    "asymmetric_padding": "INPUT 5x7x2 -> CONV1x4-3(pad=0x1:2) -> CONV1x2-3(pad=0x0:1) "
                          "-> CONV2-4(stride=2, pad=0:1) -> FC-3",
    "shrinking_windows": "INPUT 1x7x2 -> MAXPOOL1x3(stride=1, pad=0x0:2) "
                         "-> AVGPOOL1x3(stride=1, pad=0x0:2, count_pad=false) "
                         "-> AVGPOOL1x3(stride=1, pad=0x1, count_pad=false) "
                         "-> AVGPOOL1x2(stride=1, pad=0x0:1) -> CONV1-2",
    "count_pad_2d": "INPUT 6x6x2 -> AVGPOOL3(stride=2, pad=1, round=ceil, count_pad=false) "
                    "-> AVGPOOL2(stride=1, pad=1, count_pad=false) -> CONV1-2",
    "global_max": "INPUT 7x5 -> CAT[ CONV2x5-2(pad=0) -> RELU -> GMP "
                  "| CONV3x5-2(pad=0) -> GMP ] -> FC-2 -> SOFTMAX",
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_onnx_export_computes_what_the_engine_does(name, dtype):
    onnx_tests = pytest.importorskip("test_export_onnx")
    onnx_tests.check(cnnkit.parse(EXPORTED[name], filename=f"{name}.txt"), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_pytorch_export_computes_what_the_engine_does(name, dtype, tmp_path):
    torch_tests = pytest.importorskip("test_export_torch")
    torch_tests.check(cnnkit.parse(EXPORTED[name], filename=f"{name}.txt"), dtype, tmp_path)


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_onnx_operators_read_back_to_the_same_layers(name, tmp_path):
    import_tests = pytest.importorskip("test_import_onnx")
    from cnnkit.interop.onnx_import import from_onnx

    network = cnnkit.parse(EXPORTED[name], filename=f"{name}.txt")
    model, weights = import_tests.exported(tmp_path, network)
    imported = from_onnx(model, use_embedded_spec=False)
    assert [n.attrs for n in imported.network.nodes] == [n.attrs for n in network.nodes]
    x = random_input(network.input_shape)
    np.testing.assert_array_equal(
        import_tests.forward(imported.network, imported.weights(), x),
        import_tests.forward(network, weights, x))


def foreign_model(*nodes, initializers=(), shape=(1, 2, 5, 7)):
    """An ONNX model of ``nodes`` from x to y, as another tool would write it."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        list(nodes), "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 7])],
        [numpy_helper.from_array(array, name) for name, array in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_asymmetric_onnx_pads_and_count_include_pad_0_are_read(tmp_path):
    pytest.importorskip("onnx")
    from onnx import helper, save_model

    from cnnkit.interop.onnx_import import from_onnx

    model = foreign_model(
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[0, 1, 0, 2]),
        helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[1, 3], pads=[0, 0, 0, 2],
                         count_include_pad=0),
        initializers=[("w", np.ones((3, 2, 1, 4), np.float32))])
    save_model(model, str(tmp_path / "m.onnx"))
    imported = from_onnx(tmp_path / "m.onnx")
    conv, pool = imported.network.nodes[1:]
    assert conv.attrs["pad"] == (0, 0, 1, 2) and str(conv.out) == "5x7x3"  # here: pad=same
    assert "AVGPOOL1x3(stride=1, pad=0x0:2, count_pad=false)" in imported.spec


# -- brackets ------------------------------------------------------------------------------


def test_brackets_must_repeat():
    with pytest.raises(SpecError) as caught:
        cnnkit.parse("INPUT 8x8 -> [ CONV3-4 -> RELU ] -> FC-2")
    assert "]*1" in caught.value.hint
