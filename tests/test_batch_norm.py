"""Batch normalization's blocked, threaded passes against the textbook formulas in float64,
their gradients against centred differences across block and chunk boundaries, and the
memory the layer holds (its input, not a normalized copy)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradients import check_layer, randomize_params, single_layer

import cnnkit
from cnnkit.calculator.memory import executor_terms
from cnnkit.engine import parallel
from cnnkit.engine.layers import BatchNorm
from cnnkit.graph.network import Shape
from cnnkit.training.resources import peak_memory


def textbook(x, dy, gamma, beta, eps=1e-5):
    """y and dx of training-mode BN over all but the last axis, in float64, straight from
    the formulas (Ioffe & Szegedy 2015)."""
    rows, d = x.reshape(-1, x.shape[-1]).astype(float), dy.reshape(-1, x.shape[-1]).astype(float)
    mean, var = rows.mean(axis=0), rows.var(axis=0)
    x_hat = (rows - mean) / np.sqrt(var + eps)
    y = x_hat * gamma + beta
    d_x_hat = d * gamma
    dx = (d_x_hat - d_x_hat.mean(axis=0) - x_hat * (d_x_hat * x_hat).mean(axis=0)) \
        / np.sqrt(var + eps)
    return y.reshape(x.shape), dx.reshape(x.shape)


def layer_for(shape: Shape, dtype: str) -> BatchNorm:
    network = cnnkit.parse(f"INPUT {shape.h}x{shape.w}x{shape.c} -> BN")
    layer = BatchNorm(network.nodes[1], [network.nodes[0].out], np, dtype)
    rng = np.random.default_rng(5)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, shape.c)
    layer.params["beta"][...] = rng.standard_normal(shape.c)
    return layer


@pytest.mark.parametrize("offset", [0.0, 1000.0])  # a large mean: E[x^2] - E[x]^2 would cancel
@pytest.mark.parametrize("block_values", [None, 96])  # one block per chunk, or many
def test_float32_batch_norm_is_the_textbook_formula(offset, block_values, monkeypatch):
    if block_values:
        monkeypatch.setattr(BatchNorm, "BLOCK_VALUES", block_values)
    monkeypatch.setattr(parallel, "MIN_SPLIT", 1)  # split even this small batch over threads
    shape = Shape(6, 5, 16)
    layer = layer_for(shape, "float32")
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((9, 6, 5, 16)) * 2 + offset).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, dx = layer.forward([x], True), layer.backward(dy)[0]
    want_y, want_dx = textbook(x, dy, layer.params["gamma"], layer.params["beta"])
    # with the offset, float32's spacing at 1000 (6e-5, 3e-5 of the spread) bounds the mean,
    # so y; the variance is still exact to that (E[x^2] - E[x]^2 would lose all of it)
    bound = 1e-4 if offset else 2e-5
    assert np.abs(y - want_y).max() < bound * np.abs(want_y).max()
    assert np.abs(dx - want_dx).max() < 2 * bound * np.abs(want_dx).max()
    assert np.allclose(layer.grads["beta"], dy.reshape(-1, 16).sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_gradients_across_blocks_and_chunks(train, monkeypatch):
    """Centred differences in float64, with blocks of two rows and the batch split over
    threads, so that every partial sum is combined."""
    monkeypatch.setattr(BatchNorm, "BLOCK_VALUES", 6)
    monkeypatch.setattr(parallel, "MIN_SPLIT", 1)
    in_shape = Shape(2, 3, 3)
    layer, _ = single_layer("bn", in_shape)
    randomize_params(layer)
    if not train:
        layer.state["running_var"][...] = [0.5, 1.5, 2.0]
    rng = np.random.default_rng(3)
    check_layer(layer, [rng.standard_normal((4, 2, 3, 3))], train=train)


def test_the_result_depends_on_the_thread_count_only(monkeypatch):
    """Partial sums are added in chunk order: the same batch gives the same bits every time
    (and one thread agrees to rounding)."""
    monkeypatch.setattr(parallel, "MIN_SPLIT", 1)
    layer = layer_for(Shape(8, 8, 8), "float32")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 8, 8, 8)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    runs = [(layer.forward([x], True).copy(), layer.backward(dy)[0].copy()) for _ in range(3)]
    for y, dx in runs[1:]:
        assert np.array_equal(y, runs[0][0]) and np.array_equal(dx, runs[0][1])
    monkeypatch.setattr(parallel, "WORKERS", 1)
    y, dx = layer.forward([x], True), layer.backward(dy)[0]
    assert np.allclose(y, runs[0][0], atol=1e-5) and np.allclose(dx, runs[0][1], atol=1e-5)


def test_batch_norm_holds_its_input_and_allocates_little_beside_its_output():
    """Forward keeps a reference to its input (which the layer before made anyway), not a
    normalized copy, and neither pass allocates more than a few blocks beside the array it
    returns; the memory estimate counts the same (``memory._kept_values``)."""
    layer = layer_for(Shape(16, 16, 32), "float32")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 16, 16, 32)).astype(np.float32)  # 2 MiB
    with peak_memory(np) as forward:
        y = layer.forward([x], True)
    dy = np.ones_like(y)
    with peak_memory(np) as backward:
        dx = layer.backward(dy)[0]
    blocks = 8 * BatchNorm.BLOCK_VALUES * 4  # a few block-sized temporaries per thread
    assert forward["peak_bytes"] < y.nbytes + blocks
    assert backward["peak_bytes"] < dx.nbytes + blocks
    # RELU -> BN: BN holds the RELU's output, which the RELU holds already
    terms = [executor_terms(cnnkit.parse(text), 1, "float32", workers=1)["activations"]
             for text in ("INPUT 6x6x2 -> CONV3-4 -> RELU -> FC-3",
                          "INPUT 6x6x2 -> CONV3-4 -> RELU -> BN -> FC-3")]
    assert terms[1] - terms[0] == 6 * 6 * 4  # values: only BN's output, which the FC holds


def test_a_relu_after_batch_norm_leaves_its_mask_to_it():
    """BN -> RELU (ResNet's pattern): BN's backward applies the ReLU's mask block by block and
    the ReLU passes dy on, with the gradients of the plain path; the memory model knows."""
    from cnnkit.calculator.memory import masked_layers
    from cnnkit.engine import Model
    from cnnkit.engine.layers import ReLU

    network = cnnkit.parse("INPUT 5x5x3 -> CONV3-4(bias=false) -> BN -> RELU -> FC-2")
    assert masked_layers(network) == {2: 3}
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5, 5, 3))
    results = []
    for fused in (True, False):
        model = Model(network, dtype="float64", seed=1)
        bn, relu = model.layers[2], model.layers[3]
        assert isinstance(relu, ReLU) and bn.output_mask is relu and relu.mask_deferred
        if not fused:
            bn.output_mask, relu.mask_deferred = None, False
        logits = model.forward(x, train=True)
        dx = model.backward(np.ones_like(logits), input_grad=True)
        results.append((dx, {name: grad.copy() for name, _, grad in model.parameters()}))
    (fused_dx, fused_grads), (plain_dx, plain_grads) = results
    assert np.allclose(fused_dx, plain_dx, rtol=1e-12, atol=1e-14)
    for name, grad in plain_grads.items():
        assert np.allclose(fused_grads[name], grad, rtol=1e-12, atol=1e-14), name
