"""Every backward against centred differences of a random projection of its forward, in float64.

For a layer y = f(x; params) the scalar loss is sum(y * R) with R fixed and random, so its
gradient w.r.t. y is R: backward(R) must match the numerical gradient of that loss w.r.t.
every input and every parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_support import CONV_CASES, POOL_CASES, Net, single_layer

import cnnkit
from cnnkit.calculator.memory import pooled_convolutions
from cnnkit.engine import Model, softmax_cross_entropy
from cnnkit.engine.layers import Add, Concat
from cnnkit.graph.network import Shape

TOLERANCE = 1e-6


def numerical_gradient(loss, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d loss / d array by centred differences, perturbing ``array`` in place."""
    grad = np.zeros_like(array)
    flat, grad_flat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        up = loss()
        flat[i] = saved - eps
        down = loss()
        flat[i] = saved
        grad_flat[i] = (up - down) / (2 * eps)
    return grad


def relative_error(analytic, numerical) -> float:
    scale = np.linalg.norm(analytic) + np.linalg.norm(numerical)
    return float(np.linalg.norm(analytic - numerical) / max(scale, 1e-30))


def check_layer(layer, xs: list[np.ndarray], train: bool = True, before_forward=lambda: None):
    """Compares backward with numerical gradients for every input and parameter of ``layer``."""
    rng = np.random.default_rng(1)
    before_forward()
    projection = rng.standard_normal(layer.forward(xs, train).shape)
    d_inputs = layer.backward(projection)
    analytic = {key: grad.copy() for key, grad in layer.grads.items()}

    def loss() -> float:
        before_forward()
        return float((layer.forward(xs, train) * projection).sum())

    assert len(d_inputs) == len(xs)
    for x, dx in zip(xs, d_inputs):
        assert dx.shape == x.shape
        assert relative_error(dx, numerical_gradient(loss, x)) < TOLERANCE
    for key, param in layer.params.items():
        assert relative_error(analytic[key], numerical_gradient(loss, param)) < TOLERANCE


def random_input(shape: Shape, batch: int = 2, seed: int = 0) -> np.ndarray:
    dims = (batch, shape.c) if shape.flat else (batch, shape.h, shape.w, shape.c)
    return np.random.default_rng(seed).standard_normal(dims)


def randomize_params(layer, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    for param in layer.params.values():
        param[...] = rng.standard_normal(param.shape)


@pytest.mark.parametrize("hwc, attrs", CONV_CASES)
def test_conv(hwc, attrs):
    shape = Shape(*hwc)
    layer, _ = single_layer("conv", shape, **attrs)
    randomize_params(layer)
    check_layer(layer, [random_input(shape)])


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("hwc, attrs", POOL_CASES)
def test_pool(mode, hwc, attrs):
    shape = Shape(*hwc)
    layer, _ = single_layer("pool", shape, mode=mode, **attrs)
    check_layer(layer, [random_input(shape)])


@pytest.mark.parametrize("kind, in_shape, attrs", [
    ("gap", Shape(3, 4, 5), {}),
    ("flatten", Shape(3, 2, 4), {}),
    ("fc", Shape(3, 2, 4), dict(units=5)),
    ("fc", Shape(1, 1, 6, True), dict(units=3, bias=False)),
    ("id", Shape(3, 3, 2), {}),
    ("relu", Shape(3, 3, 4), {}),
    ("lrelu", Shape(3, 3, 4), dict(alpha=0.2)),
    ("tanh", Shape(1, 1, 7, True), {}),
    ("sigmoid", Shape(3, 3, 2), {}),
    ("softmax", Shape(1, 1, 6, True), {}),
    ("bn", Shape(3, 4, 3), {}),
    ("bn", Shape(1, 1, 5, True), {}),
    ("lrn", Shape(2, 2, 7), dict(size=3, alpha=0.5, beta=0.75, k=2.0)),
    ("lrn", Shape(2, 3, 6), dict(size=4, alpha=0.8, beta=0.6, k=1.0)),
])
def test_layer(kind, in_shape, attrs):
    layer, _ = single_layer(kind, in_shape, **attrs)
    randomize_params(layer)
    check_layer(layer, [random_input(in_shape, batch=3)])


@pytest.mark.parametrize("in_shape", [Shape(3, 4, 3), Shape(1, 1, 5, True)])
def test_batch_norm_at_eval(in_shape):
    layer, _ = single_layer("bn", in_shape)
    rng = np.random.default_rng(3)
    layer.state["running_mean"][...] = rng.standard_normal(in_shape.c)
    layer.state["running_var"][...] = rng.uniform(0.5, 2.0, in_shape.c)
    randomize_params(layer)
    check_layer(layer, [random_input(in_shape, batch=3)], train=False)


def test_dropout_with_a_fixed_mask():
    layer, _ = single_layer("dropout", Shape(3, 3, 4), p=0.4)

    def same_mask():
        layer.rng = np.random.default_rng(5)

    check_layer(layer, [random_input(Shape(3, 3, 4))], before_forward=same_mask)
    assert 0 < (layer._mask == 0).mean() < 1


@pytest.mark.parametrize("layer_class", [Add, Concat])
def test_merge_layers(layer_class):
    node = Net(Shape(2, 2, 3)).nodes[0]
    layer = layer_class(node, [], np, "float64")
    widths = (3, 1, 2) if layer_class is Concat else (3, 3, 3)
    xs = [random_input(Shape(2, 2, c), seed=i) for i, c in enumerate(widths)]
    check_layer(layer, xs)


def check_model(model: Model, x: np.ndarray, labels: np.ndarray):
    """The model's backward for softmax cross-entropy against numerical gradients, for the
    input and every parameter (none of which may have a zero gradient: no bias before a BN)."""

    def loss() -> float:
        return float(softmax_cross_entropy(model.forward(x, train=True), labels)[0])

    _, d_logits = softmax_cross_entropy(model.forward(x, train=True), labels)
    dx = model.backward(d_logits)
    analytic = [(name, grad.copy()) for name, _, grad in model.parameters()]
    assert relative_error(dx, numerical_gradient(loss, x)) < TOLERANCE
    for (name, grad), (_, param, _) in zip(analytic, model.parameters()):
        assert np.abs(grad).max() > 1e-8, f"{name} got no gradient"
        assert relative_error(grad, numerical_gradient(loss, param)) < TOLERANCE, name


def test_add_sends_the_gradient_into_every_branch():
    net = Net(Shape(4, 4, 2))
    a = net.add("conv", 0, out_channels=2, pad=(1, 1, 1, 1))
    b = net.chain(("conv", dict(out_channels=2, kernel=(1, 1))), ("tanh", {}), after=0)
    merged = net.add("add", a, b, 0)  # two branches and the identity shortcut
    net.chain(("flatten", {}), ("fc", dict(units=3)))
    assert net.nodes[merged].inputs == (a, b, 0)
    model = Model(net.network(), dtype="float64", seed=1)
    check_model(model, random_input(Shape(4, 4, 2), batch=3), np.array([0, 2, 1]))


def test_concat_sends_each_branch_its_channels():
    net = Net(Shape(4, 4, 2))
    a = net.add("conv", 0, out_channels=3, kernel=(1, 1))
    b = net.add("conv", 0, out_channels=2, pad=(1, 1, 1, 1))
    net.add("concat", a, 0, b)
    net.chain(("gap", {}), ("fc", dict(units=3)))
    model = Model(net.network(), dtype="float64", seed=2)
    check_model(model, random_input(Shape(4, 4, 2), batch=3), np.array([1, 0, 2]))


def test_whole_model_with_res_cat_and_bn():
    net = Net(Shape(6, 6, 2))
    stem = net.chain(("conv", dict(out_channels=4, pad=(1, 1, 1, 1), bias=False)), ("bn", {}),
                     ("relu", {}))
    residual = net.chain(("conv", dict(out_channels=4, pad=(1, 1, 1, 1), bias=False)), ("bn", {}))
    net.add("add", stem, residual)
    res_out = net.add("relu")
    left = net.add("conv", res_out, out_channels=2, kernel=(1, 1))
    right = net.chain(("conv", dict(out_channels=3, pad=(1, 1, 1, 1))), ("lrelu", {}),
                      after=res_out)
    net.add("concat", left, right)
    net.chain(("pool", dict(mode="max")), ("fc", dict(units=3)), ("softmax", {}))
    model = Model(net.network(), dtype="float64", seed=3)
    check_model(model, random_input(Shape(6, 6, 2), batch=4), np.array([0, 1, 2, 1]))


@pytest.mark.parametrize("spec, method, pool", [
    # im2col pooled by its windows' rows; Winograd pooled in its blocks, no ReLU between
    ("INPUT 7x7x2 -> CONV3-3 -> RELU -> POOL2(round=floor) -> FC-3", "auto", 3),
    ("INPUT 6x6x2 -> CONV3-2(bias=false) -> POOL2 -> FC-3", "winograd", 2),
])
def test_convs_that_pool_their_own_tiles(spec, method, pool, monkeypatch):
    """A conv read only by a max pool (through a ReLU or not) runs the pool itself, and its
    backward takes the pool's output gradient (``memory.pooled_convolutions``)."""
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", method)
    network = cnnkit.parse(spec)
    model = Model(network, dtype="float64", seed=5)
    assert pooled_convolutions(network) == {1: pool}
    assert model.layers[1].algorithm == ("im2col" if method == "auto" else method)
    check_model(model, random_input(network.input_shape, batch=3), np.array([2, 0, 1]))


def test_logits_from_a_global_average_pool():
    net = Net(Shape(4, 4, 2))
    net.chain(("conv", dict(out_channels=3, kernel=(1, 1))), ("gap", {}), ("softmax", {}))
    model = Model(net.network(), dtype="float64", seed=4)
    assert model.forward(random_input(Shape(4, 4, 2))).shape == (2, 1, 1, 3)
    check_model(model, random_input(Shape(4, 4, 2), batch=3), np.array([2, 0, 1]))


def test_softmax_cross_entropy():
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((5, 4)) * 3, np.array([0, 3, 1, 1, 2])
    loss, grad = softmax_cross_entropy(logits, labels)
    assert relative_error(
        grad, numerical_gradient(lambda: float(softmax_cross_entropy(logits, labels)[0]), logits)
    ) < TOLERANCE
