"""The convolution's shortcuts: tap-major im2col for few input channels, and the mask of a
following ReLU applied inside the conv's backward.  Each must give what the plain path
gives; tests/test_torch_agreement.py checks both against PyTorch as well."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkit
from cnnkit.engine import Model
from cnnkit.engine.layers import Conv, ReLU


def step(model: Model, x, seed: int = 0):
    """Output, input gradient and parameter gradients of one forward/backward."""
    y = model.forward(x, train=True)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = model.backward(dy)
    return y, dx, {name: grad.copy() for name, _, grad in model.parameters()}


def assert_same(a, b, tolerance=1e-12):
    for got, want in zip(a[:2], b[:2]):
        assert np.abs(got - want).max() <= tolerance * np.abs(want).max()
    for name in b[2]:
        assert np.abs(a[2][name] - b[2][name]).max() <= tolerance * np.abs(b[2][name]).max()


@pytest.mark.parametrize("spec", [
    "INPUT 9x9x1 -> CONV5-4 -> RELU -> CONV3-3(stride=2, round=floor) -> FC-2",
    "INPUT 8x8x3 -> CONV3-4(pad=0x1:2, dilation=2) -> FC-2",
    "INPUT 8x8x2 -> CONV3-3(stride=2, round=floor) -> FC-2",  # input gradient by col2im
])
def test_tap_major_rows_give_what_row_major_ones_give(spec):
    network = cnnkit.parse(spec)
    shape = network.input_shape
    x = np.random.default_rng(1).standard_normal((5, shape.h, shape.w, shape.c))
    fast, plain = Model(network, dtype="float64"), Model(network, dtype="float64")
    few = [layer for layer in plain.layers if isinstance(layer, Conv) and layer.tap_major]
    assert few  # the layers reading 1-3 channels
    for layer in few:
        layer.tap_major = False
    assert_same(step(fast, x), step(plain, x))


def test_a_conv_applies_the_mask_of_the_relu_that_alone_reads_it():
    network = cnnkit.parse("INPUT 8x8x2 -> CONV3-4 -> RELU -> CONV3-4 -> RELU -> FC-3")
    model = Model(network, dtype="float64")
    convs = [layer for layer in model.layers if isinstance(layer, Conv)]
    relus = [layer for layer in model.layers if isinstance(layer, ReLU)]
    assert [conv.output_mask for conv in convs] == relus
    assert all(relu.mask_deferred for relu in relus)
    dy = np.ones((2, 8, 8, 4))
    assert relus[0].backward(dy)[0] is dy  # passed on, not masked twice

    plain = Model(network, dtype="float64")
    for conv, relu in zip(plain.layers, plain.layers[1:]):
        if isinstance(conv, Conv):
            conv.output_mask, relu.mask_deferred = None, False
    x = np.random.default_rng(2).standard_normal((6, 8, 8, 2))
    assert_same(step(model, x), step(plain, x))


def test_a_conv_read_by_more_than_its_relu_keeps_the_relu_s_own_mask():
    network = cnnkit.parse("INPUT 8x8x4 -> RES[ CONV3-4 -> RELU -> CONV3-4 | ID ] -> RELU -> FC-2")
    model = Model(network, dtype="float64")
    masked = [layer for layer in model.layers if isinstance(layer, Conv) and layer.output_mask]
    assert len(masked) == 1  # the first conv; the second feeds the sum, not a RELU
    last_relu = [layer for node, layer in zip(network.nodes, model.layers)
                 if node.kind == "relu"][-1]
    assert not last_relu.mask_deferred  # it reads the sum: it masks on its own


def test_first_layer_tiles_have_their_own_budget_and_the_memory_model_follows(monkeypatch):
    """A first layer's tap-major rows go in tiles of up to 2 MiB (4 MiB for other im2col
    rows); the estimate cuts the batch the same way.  32x32x3 -> 32, per image: the rows
    are (27 taps + the bias's row of ones) x 1024 pixels, 112 KiB: 18 images in 2 MiB."""
    from test_engine_support import workspace_after_training_steps

    from cnnkit.calculator import memory
    from cnnkit.calculator.memory import executor_terms
    from cnnkit.engine import parallel

    monkeypatch.setattr(parallel, "WORKERS", 1)
    network = cnnkit.parse("INPUT 32x32x3 -> CONV3-32 -> RELU -> FC-10")
    layer = Model(network, dtype="float32").layers[1]
    assert layer.tap_major and layer.algorithm == "im2col"
    assert memory.tile_bytes("im2col", "cpu", tap_major=True) == 2 * 2**20
    tiles = [tile.stop - tile.start for chunk in layer._chunks(40) for tile in chunk]
    assert tiles == [18, 18, 4]
    assert workspace_after_training_steps(network, 40) == executor_terms(
        network, 40, "float32", workers=1)["workspace"]
