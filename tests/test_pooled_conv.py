"""A conv that only a tiling max pool reads (through a ReLU or not) pools its own tiles while
they are in cache, forward and backward: the results, the gradients, and the memory the
calculator counts for it."""

import numpy as np
import pytest
from test_engine_support import workspace_after_training_steps

import cnnkit
from cnnkit.calculator import convolution
from cnnkit.calculator.memory import executor_terms, pooled_convolutions
from cnnkit.engine import Model, parallel

# each spec takes another path through Conv.pooled_forward
POOLED = {
    # a tap-major first layer with a bias row, then Winograd F(4x4, 5x5) with 2x2 maxima
    # taken in its blocks
    "INPUT 28x28x1 -> CONV5-8 -> RELU -> POOL2 -> CONV5-16 -> RELU -> POOL2 -> FC-10": {1: 3, 4: 6},
    # 13x13 maps: part-filled last blocks, a floor-rounded pool; F(4x4, 3x3)
    "INPUT 13x13x16 -> CONV3-16 -> RELU -> POOL2(round=floor) -> FC-4": {1: 3},
    # 4x4 windows in 4x4 blocks; 3x3 windows by im2col, with pixels no window reads
    "INPUT 16x16x16 -> CONV3-16 -> RELU -> POOL4 -> FC-4": {1: 3},
    "INPUT 14x14x8 -> CONV3-8 -> RELU -> POOL3(round=floor) -> FC-4": {1: 3},
    # no ReLU and no bias; grouped and strided im2col; rectangular windows
    "INPUT 14x14x4 -> CONV3-8(bias=false) -> POOL2 -> CONV3-8(groups=2, stride=2) -> RELU"
    " -> POOL2x1 -> FC-3": {1: 2, 3: 5},
}


def test_which_convs_pool_their_tiles():
    for spec, pooled in POOLED.items():
        assert pooled_convolutions(cnnkit.parse(spec)) == pooled, spec
    for spec in ("INPUT 8x8x2 -> CONV3-4 -> RELU -> RES[POOL2 | POOL2]",  # two readers
                 "INPUT 8x8x2 -> CONV3-4 -> BN -> RELU -> POOL2 -> FC-3",
                 "INPUT 8x8x2 -> CONV3-4 -> RELU -> AVGPOOL2 -> FC-3",
                 "INPUT 9x9x2 -> CONV3-4 -> RELU -> POOL3(stride=2) -> FC-3",  # overlapping
                 "INPUT 8x8x2 -> CONV3-4 -> RELU -> POOL2(pad=1, round=floor) -> FC-3",
                 "INPUT 8x8x2 -> CONV3-4 -> TANH -> POOL2 -> FC-3",
                 # a Winograd layer whose blocks (4x4) do not hold whole 3x3 windows
                 "INPUT 12x12x16 -> CONV3-16 -> RELU -> POOL3 -> FC-4"):
        assert pooled_convolutions(cnnkit.parse(spec)) == {}, spec


def counting_forwards(model, indices):
    """Wraps the forward of the layers at ``indices``; returns the list their calls go to."""
    calls = []
    for k in indices:
        layer = model.layers[k]

        def counted(xs, train, forward=layer.forward, k=k):
            calls.append(k)
            return forward(xs, train)

        layer.forward = counted
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spec", list(POOLED))
def test_pooled_convs_give_the_outputs_of_every_layer_run_in_turn(spec, dtype):
    """What every layer run in turn gives (``activations``), in evaluation and training,
    with the ReLUs and pools after the convs not run.  (im2col's products come in another
    row order, and BLAS may round a row's last bit differently where it falls on another
    edge of its blocking.)"""
    network = cnnkit.parse(spec)
    model = Model(network, dtype=dtype, seed=1)
    shape = network.input_shape
    # rounded values: ties in the windows, zeros at the ReLU
    x = np.round(np.random.default_rng(0).standard_normal((5, shape.h, shape.w, shape.c)) * 3)
    skipped = sorted({k for conv, pool in POOLED[spec].items()
                      for k in (pool, network.nodes[pool].inputs[0]) if k != conv})
    calls = counting_forwards(model, skipped)
    expected = model.activations(x)[-1]
    calls.clear()
    tolerance = 1e-6 if dtype == "float32" else 1e-14
    for train in (False, True):
        np.testing.assert_allclose(model.forward(x, train), expected, rtol=tolerance,
                                   atol=tolerance * np.abs(expected).max())
    assert calls == []


@pytest.mark.parametrize("spec", list(POOLED))
def test_pooled_convs_send_the_pools_gradient_to_the_winners(spec):
    """A pooled training forward notes each window's first maximum (none where the ReLU
    stops the gradient), and the conv's backward takes the pool's output gradient: the
    gradients of the layers run in turn (as a backward after an evaluating forward runs
    them), ties and zeros included, with the data rounded to whole numbers."""
    network = cnnkit.parse(spec)
    shape = network.input_shape
    x = np.round(np.random.default_rng(0).standard_normal((6, shape.h, shape.w, shape.c)) * 3)
    pooled, plain = (Model(network, dtype="float64", seed=2) for _ in range(2))
    for model in (pooled, plain):  # quarters: sums of products that stay exact
        rng = np.random.default_rng(3)
        for _, param, _ in model.parameters():
            param[...] = rng.integers(-3, 4, param.shape) / 4
    logits = pooled.forward(x, train=True)
    dy = np.random.default_rng(1).standard_normal(logits.shape)
    plain.forward(x, train=False)  # its backward runs the layers in turn first
    np.testing.assert_array_equal(pooled.backward(dy), plain.backward(dy))
    for (name, _, a), (_, _, b) in zip(pooled.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert np.abs(a).max() > 0, name
    # every layer ran in ``activations``: a backward after it is the plain one too
    plain.forward(x, train=True)
    plain.activations(x)
    np.testing.assert_array_equal(plain.backward(dy), pooled.backward(dy))


def test_pooled_im2col_tiles_compute_the_windows_pixels_into_an_output_array():
    network = cnnkit.parse("INPUT 16x16x16 -> CONV3-32")
    attrs, (x, y) = network.nodes[1].attrs, (network.nodes[0].out, network.nodes[1].out)
    assert convolution.algorithm(attrs, 16, (16, 16)) == "winograd"
    plain = convolution.tile_values(attrs, x, y, False, training=False)
    assert "output" not in plain  # Winograd's blocks give the maxima
    assert convolution.tile_values(attrs, x, y, False, training=False, pool=(2, 2)) == plain
    im2col = convolution.tile_values(attrs, x, y, False, method="im2col", training=False)
    assert im2col["rows"] == 16 * 16 * 9 * 16
    pooled = convolution.tile_values(attrs, x, y, False, method="im2col", training=False,
                                     pool=(3, 3))  # 15x15 of the 16x16 pixels are read
    assert pooled == {"output": 15 * 15 * 32, "rows": 15 * 15 * 9 * 16,
                      "padded": im2col["padded"]}
    assert "output" not in convolution.tile_values(attrs, x, y, True, method="im2col",
                                                   training=False, pool=(2, 2))


def test_a_pooled_winograd_layer_makes_its_output_gradient_in_its_blocks(monkeypatch):
    """Its backward scatters the pool's gradient straight into Winograd's blocks: no work
    array holds the gradient in image order, where an im2col layer needs one; the memory
    model sizes neither more."""
    monkeypatch.setattr(parallel, "WORKERS", 1)
    network = cnnkit.parse("INPUT 13x13x16 -> CONV3-16 -> RELU -> POOL2(round=floor) -> FC-4")
    attrs, (x, y) = network.nodes[1].attrs, (network.nodes[0].out, network.nodes[1].out)
    for method, scattered in (("winograd", False), ("im2col", True)):
        values = convolution.tile_values(attrs, x, y, True, masked=True, method=method,
                                         pool=(2, 2))
        assert ("masked" in values) == scattered, method
    model = Model(network, seed=0)
    assert model.layers[1].tiling is not None
    model.forward(np.ones((2, 13, 13, 16), "float32"), train=True)
    model.backward(np.ones((2, 4), "float32"))
    assert not any(key.startswith("masked") for key in model.layers[1].workspace._arrays)


def test_the_memory_model_counts_the_pooled_convs_work_arrays(monkeypatch):
    """After training steps and an evaluating forward, as the trainer runs them, the
    workspace holds the pooled convs' output tiles and gradient tiles, as the calculator
    counts them."""
    monkeypatch.setattr(parallel, "WORKERS", 1)
    for spec in ("INPUT 28x28x1 -> CONV5-8 -> RELU -> POOL2 -> FC-10",
                 "INPUT 14x14x8 -> CONV3-8 -> RELU -> POOL3(round=floor) -> FC-4",
                 "INPUT 16x16x8 -> CONV3-8 -> POOL2 -> CONV3-16 -> POOL2 -> FC-4"):
        network = cnnkit.parse(spec)
        measured = workspace_after_training_steps(network, 8)
        assert measured == executor_terms(network, 8, "float32", workers=1)["workspace"], spec


def test_a_pooled_conv_keeps_neither_its_output_nor_the_relus():
    """What a training step keeps for backward: the conv's input, the pool's output (the
    next layer's input) and a byte per pooled output, not the conv's or the ReLU's output."""
    network = cnnkit.parse("INPUT 28x28x1 -> CONV5-8 -> RELU -> POOL2 -> FC-10")
    kept = executor_terms(network, 1)["activations"]
    # input, pooled output (FC's input), winners (4 bytes per float), logits
    assert kept == 28 * 28 + 14 * 14 * 8 + 14 * 14 * 8 // 4 + 10
