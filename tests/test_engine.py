"""Forward values against slow references, and the Model/optimizer bookkeeping."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_engine_support import (
    CONV_CASES,
    POOL_CASES,
    Net,
    single_layer,
    vgg_like,
    workspace_after_training_steps,
)

import cnnkit
from cnnkit.engine import SGD, Adam, Model, Momentum, select_device, softmax_cross_entropy
from cnnkit.engine.backend import get_array_module
from cnnkit.engine.convert import (
    conv_weight_from_oihw,
    conv_weight_to_oihw,
    fc_weight_from_torch,
    fc_weight_to_torch,
    nhwc_to_nchw,
)
from cnnkit.engine.schedules import constant, cosine, step
from cnnkit.graph.network import Node, Shape


def padded(x, pad, fill):
    top, bottom, left, right = pad
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)


def reference_conv(x, w, b, attrs):
    """Direct convolution: one dot product per output pixel and channel."""
    (sh, sw), (dh, dw), groups = attrs["stride"], attrs["dilation"], attrs["groups"]
    xp = padded(x, attrs["pad"], 0)
    kh, kw, per_group, out = w.shape
    ho = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], ho, wo, out))
    for r in range(ho):
        for s in range(wo):
            patch = xp[:, r * sh:r * sh + dh * (kh - 1) + 1:dh, s * sw:s * sw + dw * (kw - 1) + 1:dw]
            for o in range(out):
                g = o // (out // groups)
                y[:, r, s, o] = (patch[..., g * per_group:(g + 1) * per_group] * w[..., o]).sum(
                    axis=(1, 2, 3))
    return y + b


def reference_pool(x, attrs, out_hw):
    """Max (padding = -inf) or mean (written padding counted as zeros, ceil overhang not)
    over each window."""
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    xp = padded(x, attrs["pad"], -np.inf if attrs["mode"] == "max" else 0)
    over_h, over_w = attrs.get("overhang", (0, 0))
    counted = xp[:, :xp.shape[1] - over_h, :xp.shape[2] - over_w]
    y = np.zeros((x.shape[0],) + out_hw + (x.shape[3],))
    for r in range(out_hw[0]):
        for s in range(out_hw[1]):
            window = counted[:, r * sh:r * sh + kh, s * sw:s * sw + kw]
            y[:, r, s] = window.max(axis=(1, 2)) if attrs["mode"] == "max" else \
                window.mean(axis=(1, 2))
    return y


def images(n, h, w, c, seed=0):
    return np.random.default_rng(seed).standard_normal((n, h, w, c))


@pytest.mark.parametrize("hwc, attrs", CONV_CASES)
def test_conv_matches_direct_convolution(hwc, attrs):
    layer, node = single_layer("conv", Shape(*hwc), **attrs)
    rng = np.random.default_rng(1)
    for param in layer.params.values():
        param[...] = rng.standard_normal(param.shape)
    x = images(3, *hwc)
    bias = layer.params.get("b", 0)
    expected = reference_conv(x, layer.params["W"], bias, node.attrs)
    np.testing.assert_allclose(layer.forward([x], True), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("hwc, attrs", POOL_CASES)
def test_pool_matches_reference(mode, hwc, attrs):
    layer, node = single_layer("pool", Shape(*hwc), mode=mode, **attrs)
    x = images(2, *hwc)
    expected = reference_pool(x, node.attrs, (node.out.h, node.out.w))
    np.testing.assert_allclose(layer.forward([x], True), expected, rtol=1e-12)


def test_average_pool_leaves_the_ceil_overhang_out_as_pytorch_does():
    """The figures of torch.nn.AvgPool2d(3, 2, ceil_mode=True) on 0..35 in a 6x6 image:
    the last row and column of windows average 6 pixels, not 9."""
    network = cnnkit.parse("INPUT 6x6x1 -> AVGPOOL3(stride=2, round=ceil)")
    assert network.nodes[1].attrs["overhang"] == (1, 1)
    model = Model(network, dtype="float64")
    y = model.forward(np.arange(36.0).reshape(1, 6, 6, 1))[0, :, :, 0]
    np.testing.assert_allclose(y, [[7, 9, 10.5], [19, 21, 22.5], [28, 30, 31.5]], rtol=1e-15)
    # written padding counts as zeros: AvgPool2d(2, 2, padding=1, ceil_mode=True) on ones
    model = Model(cnnkit.parse("INPUT 5x5x1 -> AVGPOOL2(pad=1, round=ceil)"), dtype="float64")
    y = model.forward(np.ones((1, 5, 5, 1)))[0, :, :, 0]
    np.testing.assert_allclose(y, [[0.25, 0.5, 0.5], [0.5, 1, 1], [0.5, 1, 1]], rtol=1e-15)


@pytest.mark.parametrize("attrs, firsts", [
    (dict(kernel=(2, 2), stride=(2, 2)), [(0, 0), (0, 2), (2, 0), (2, 2)]),
    (dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1, 1, 1)), [(0, 0), (0, 1), (1, 0), (1, 1)]),
])
def test_max_pool_gradient_goes_to_the_first_maximum_of_a_tie(attrs, firsts):
    layer, node = single_layer("pool", Shape(4, 4, 1), **attrs)
    layer.forward([np.ones((1, 4, 4, 1))], True)
    dx = layer.backward(np.ones((1, node.out.h, node.out.w, 1)))[0][0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[tuple(zip(*firsts))] = 1  # the first non-padding pixel of each window
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("size, kernel, index_type", [
    (9, 2, np.uint8), (9, 3, np.uint8), (17, 17, np.uint16)])  # 289 pixels: two bytes
def test_tiling_max_pool_notes_each_windows_winner_in_forward(size, kernel, index_type):
    """The tiling path finds the winners (the first maximum, scan order) while it pools and
    keeps only their indices; the general path finds them in backward from the kept input
    and output.  On values with many ties both give the same gradient, also when the
    forward was an evaluating one (the tiling path then finds the winners in backward)."""
    layer, node = single_layer("pool", Shape(size, size, 3), kernel=(kernel, kernel),
                               stride=(kernel, kernel))
    general, _ = single_layer("pool", Shape(size, size, 3), kernel=(kernel, kernel),
                              stride=(kernel, kernel))
    general.tiles = False
    assert layer.tiles
    rng = np.random.default_rng(0)
    x = np.maximum(np.round(rng.standard_normal((5, size, size, 3))), 0)  # ties everywhere
    dy = rng.standard_normal((5, node.out.h, node.out.w, 3))
    expected_y = general.forward([x], True)
    expected_dx = general.backward(dy)[0]
    for train in (True, False):
        np.testing.assert_array_equal(layer.forward([x], train), expected_y)
        if train:
            assert layer._winner.dtype == index_type and layer._winner.shape == dy.shape
            assert layer._x is None  # nothing else is kept for backward
        np.testing.assert_array_equal(layer.backward(dy)[0], expected_dx)


def test_tiling_max_pool_training_memory_is_a_byte_per_output():
    """A training forward allocates its output and one byte per output for the winners, and
    holds no other array; the memory estimate counts the same (``memory._kept_values``)."""
    from cnnkit.calculator.memory import executor_terms
    from cnnkit.training.resources import peak_memory

    layer, node = single_layer("pool", Shape(32, 32, 16), dtype="float32", kernel=(2, 2),
                               stride=(2, 2))
    x = np.ones((32, 32, 32, 16), np.float32)  # 2 MiB
    layer.forward([x], True)
    with peak_memory(np) as forward:
        y = layer.forward([x], True)
    # the last step's winners until the new ones are noted, and two bytes of temporaries
    # per output (a comparison and an index, chunk by chunk)
    assert forward["peak_bytes"] < y.nbytes + 4 * y.size + 2**14
    assert layer._winner.nbytes == y.size
    # POOL2 -> RELU: the pool's output is held by nobody but its winners' bytes remain
    # (a quarter of a float32 value per output); the RELU holds its own output
    terms = executor_terms(cnnkit.parse("INPUT 8x8x4 -> POOL2 -> RELU -> FC-3"), 1, "float32",
                           workers=1)
    assert terms["activations"] == 8 * 8 * 4 + 4 * 4 * 4 // 4 + 4 * 4 * 4 + 3


def test_batch_norm_running_statistics_and_eval():
    layer, _ = single_layer("bn", Shape(3, 3, 2), momentum=0.2)
    batches = [images(4, 3, 3, 2, seed=s) * 3 + 1 for s in range(3)]
    mean, var = np.zeros(2), np.ones(2)
    for x in batches:
        layer.forward([x], True)
        mean = 0.8 * mean + 0.2 * x.mean(axis=(0, 1, 2))
        var = 0.8 * var + 0.2 * x.var(axis=(0, 1, 2), ddof=1)
    np.testing.assert_allclose(layer.state["running_mean"], mean)
    np.testing.assert_allclose(layer.state["running_var"], var)

    x = images(2, 3, 3, 2, seed=9)
    layer.params["gamma"][...] = [2.0, 0.5]
    layer.params["beta"][...] = [0.1, -1.0]
    expected = (x - mean) / np.sqrt(var + 1e-5) * [2.0, 0.5] + [0.1, -1.0]
    np.testing.assert_allclose(layer.forward([x], False), expected)
    np.testing.assert_allclose(layer.forward([x[:1]], False), expected[:1])  # no batch stats
    np.testing.assert_allclose(layer.state["running_mean"], mean)  # eval does not update


def test_dropout_is_off_at_eval_and_scaled_at_training():
    layer, _ = single_layer("dropout", Shape(20, 20, 10), p=0.3)
    x = images(4, 20, 20, 10) + 5
    np.testing.assert_array_equal(layer.forward([x], False), x)
    y = layer.forward([x], True)
    dropped = y == 0
    assert abs(dropped.mean() - 0.3) < 0.02
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.7)


def small_net(dropout: bool = False, softmax: bool = True):
    net = Net(Shape(8, 8, 1))
    net.chain(("conv", dict(out_channels=4, pad=(1, 1, 1, 1))), ("bn", {}), ("relu", {}),
              ("pool", {}), ("flatten", {}))
    if dropout:
        net.add("dropout", p=0.5)
    net.add("fc", units=2)
    if softmax:
        net.add("softmax")
    return net.network()


def separable_problem(n, seed=0):
    """8x8 images whose label says which half, left or right, is brighter."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 8, 8, 1)) * 0.5
    x[labels == 0, :, :4] += 1
    x[labels == 1, :, 4:] += 1
    return x.astype(np.float32), labels


def train(model, steps, optimizer_class=SGD, lr=0.1, seed=0):
    x, labels = separable_problem(32, seed)
    optimizer = optimizer_class(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, d_logits = softmax_cross_entropy(model.forward(x, train=True), labels)
        model.backward(d_logits)
        optimizer.step()
        losses.append(float(loss))
    return losses


def test_same_seed_gives_identical_weights_and_losses():
    a, b = Model(small_net(dropout=True), seed=7), Model(small_net(dropout=True), seed=7)
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(wa, wb, err_msg=name)
    assert train(a, 4) == train(b, 4)
    c = Model(small_net(dropout=True), seed=8)
    assert not np.array_equal(a.state_dict()["1:CONV1/W"], c.state_dict()["1:CONV1/W"])


def test_he_init_before_relu_and_glorot_elsewhere():
    model = Model(vgg_like(batch_norm=True), seed=0)
    weights = {name: param for name, param, _ in model.parameters()}
    conv = weights["4:CONV4/W"]  # CONV3-32 -> BN -> RELU: He, fan_in 3*3*32
    assert abs(conv.std() / np.sqrt(2 / 288) - 1) < 0.05
    last = weights["17:FC17/W"]  # FC-10 -> SOFTMAX: Glorot, limit sqrt(6/(256 + 10))
    limit = np.sqrt(6 / 266)
    assert 0.95 * limit < np.abs(last).max() <= limit
    assert all(not np.any(p) for name, p, _ in model.parameters() if name.endswith(("/b", "/beta")))


def test_state_dict_round_trip(tmp_path):
    trained = Model(small_net())
    train(trained, 3)
    np.savez(tmp_path / "weights.npz", **trained.state_dict())
    fresh = Model(small_net(), seed=99)
    fresh.load_state_dict(np.load(tmp_path / "weights.npz"))
    x, _ = separable_problem(5, seed=3)
    np.testing.assert_array_equal(fresh.predict_proba(x), trained.predict_proba(x))
    assert any(name.endswith("/running_var") for name in trained.state_dict())


def test_load_state_dict_names_the_mismatch():
    model = Model(small_net())
    saved = model.state_dict()
    saved["1:CONV1/W"] = np.zeros((5, 5, 1, 4))
    del saved["2:BN2/gamma"]
    with pytest.raises(ValueError, match=r"(?s)missing: 2:BN2/gamma.*1:CONV1/W: saved \(5, 5"):
        model.load_state_dict(saved)


def test_parameter_counts_follow_the_formulas():
    model = Model(vgg_like(batch_norm=True))
    convs = [(3, 32), (32, 32), (32, 64), (64, 64)]
    trainable = sum(3 * 3 * cin * cout + cout for cin, cout in convs)
    trainable += 8 * 8 * 64 * 256 + 256 + 256 * 10 + 10
    trainable += sum(2 * cout for _, cout in convs)  # BN gamma, beta
    assert model.count_parameters() == (trainable, sum(2 * cout for _, cout in convs))


def test_training_reduces_the_loss():
    losses = train(Model(small_net(), seed=0), 40, Momentum, lr=0.05)
    assert losses[-1] < 0.25 * losses[0]
    x, labels = separable_problem(200, seed=1)
    model = Model(small_net(), seed=0)
    train(model, 40, Momentum, lr=0.05)
    assert (model.predict_proba(x).argmax(axis=1) == labels).mean() > 0.95


def test_predict_proba_with_or_without_a_softmax_node():
    x, _ = separable_problem(10)
    with_softmax = Model(small_net(softmax=True), seed=3).predict_proba(x, batch_size=4)
    without = Model(small_net(softmax=False), seed=3).predict_proba(x, batch_size=3)
    np.testing.assert_allclose(with_softmax.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(with_softmax, without, rtol=1e-6)


def test_model_dtype():
    x, _ = separable_problem(2)
    assert Model(small_net(), dtype="float64").forward(x).dtype == np.float64
    assert Model(small_net()).forward(x.astype(np.float64)).dtype == np.float32


def parameter_pair():
    """A weight matrix and a bias, both with gradient 0.5."""
    w, b = np.ones((2, 2)), np.ones(2)
    params = [("1:FC/W", w, np.full((2, 2), 0.5)), ("1:FC/b", b, np.full(2, 0.5))]
    return params, w, b


def test_sgd_decays_weights_only():
    params, w, b = parameter_pair()
    SGD(params, lr=0.1, weight_decay=0.1).step()
    np.testing.assert_allclose(w, 1 - 0.1 * (0.5 + 0.1))
    np.testing.assert_allclose(b, 1 - 0.1 * 0.5)


def test_momentum_accumulates():
    params, w, _ = parameter_pair()
    optimizer = Momentum(params, lr=0.1, momentum=0.9)
    optimizer.step()
    optimizer.step()
    np.testing.assert_allclose(w, 1 - 0.1 * 0.5 - 0.1 * (0.9 * 0.5 + 0.5))


def test_adam_first_step_is_lr_in_the_gradient_direction():
    params, w, _ = parameter_pair()
    Adam(params, lr=0.01).step()
    np.testing.assert_allclose(w, 1 - 0.01, rtol=1e-6)


@pytest.mark.parametrize("optimizer_class", [Momentum, Adam])
def test_optimizer_state_resumes_exactly(optimizer_class):
    def run(model, optimizer, steps):
        x, labels = separable_problem(8)
        for _ in range(steps):
            model.backward(softmax_cross_entropy(model.forward(x), labels)[1])
            optimizer.step()

    straight = Model(small_net())
    run(straight, optimizer_class(straight.parameters(), lr=0.01), 4)

    first = Model(small_net())
    optimizer = optimizer_class(first.parameters(), lr=0.01)
    run(first, optimizer, 2)
    resumed = Model(small_net(), seed=5)
    resumed.load_state_dict(first.state_dict())
    optimizer_again = optimizer_class(resumed.parameters(), lr=0.01)
    optimizer_again.load_state_dict(optimizer.state_dict())
    run(resumed, optimizer_again, 2)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_schedules():
    assert constant(0.1)(7) == 0.1
    assert [step(1.0, 2, 0.5)(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    schedule = cosine(1.0, 10, min_lr=0.1)
    assert schedule(0) == 1.0 and abs(schedule(5) - 0.55) < 1e-12 and abs(schedule(10) - 0.1) < 1e-12


def test_conv_weights_in_pytorch_layout():
    layer, _ = single_layer("conv", Shape(5, 5, 3), out_channels=4)
    w = np.random.default_rng(0).standard_normal(layer.params["W"].shape)
    layer.params["W"][...] = w
    x = images(2, 5, 5, 3)
    oihw = conv_weight_to_oihw(w)
    assert oihw.shape == (4, 3, 3, 3)
    windows = np.lib.stride_tricks.sliding_window_view(nhwc_to_nchw(x), (3, 3), axis=(2, 3))
    expected = np.einsum("nchwij,ocij->nohw", windows, oihw)  # PyTorch's conv2d, NCHW
    np.testing.assert_allclose(nhwc_to_nchw(layer.forward([x], True)), expected)
    np.testing.assert_array_equal(conv_weight_from_oihw(oihw), w)


def test_fc_weights_in_pytorch_layout():
    in_shape = Shape(2, 3, 4)
    layer, _ = single_layer("fc", in_shape, units=5, bias=False)
    w = np.random.default_rng(0).standard_normal(layer.params["W"].shape)
    layer.params["W"][...] = w
    x = images(2, 2, 3, 4)
    torch_w = fc_weight_to_torch(w, in_shape)
    expected = nhwc_to_nchw(x).reshape(2, -1) @ torch_w.T  # torch.flatten of NCHW, then Linear
    np.testing.assert_allclose(layer.forward([x], True), expected)
    np.testing.assert_array_equal(fc_weight_from_torch(torch_w, in_shape), w)


def test_select_device(monkeypatch):
    assert select_device("cpu")[0] is np
    assert get_array_module(np.zeros(1)) is np
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    xp, sentence = select_device("auto")
    assert xp is np and "CPU" in sentence and "CuPy is not installed" in sentence
    with pytest.raises(RuntimeError, match="GPU was requested"):
        select_device("gpu")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")


def test_importing_the_engine_does_not_import_cupy():
    code = "import sys, cnnkit.engine; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_inconsistent_sizes_are_reported():
    node = Node(1, "POOL", "pool", (0,), Shape(3, 3, 1),
                dict(mode="max", kernel=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0)))
    net = Net(Shape(4, 4, 1))
    net.nodes.append(node)
    with pytest.raises(ValueError, match="POOL: 3 windows need 6"):
        Model(net.network())


def test_reseed_makes_dropout_masks_a_function_of_the_key():
    model = Model(small_net(dropout=True), seed=1)
    x, _ = separable_problem(6)
    model.reseed(1, 0, 5)
    first = model.forward(x)
    model.forward(x)  # the generator moves on
    model.reseed(1, 0, 5)
    np.testing.assert_array_equal(model.forward(x), first)
    model.reseed(1, 0, 6)
    assert not np.array_equal(model.forward(x), first)


def test_init_std_draws_every_weight_from_one_normal():
    """The textbook's SimpleConvNet starts from N(0, 0.01^2) (weight_init_std=0.01)."""
    import cnnkit
    from cnnkit.engine.model import Model as _Model

    net = cnnkit.load("specs/simpleconvnet.txt")
    model = _Model(net, seed=0, init_std=0.01)
    weights = [layer.params["W"] for layer in model.layers if "W" in layer.params]
    assert all(abs(float(w.std()) - 0.01) < 0.002 for w in weights)
    he = _Model(net, seed=0)
    assert float(he.layers[1].params["W"].std()) > 0.1  # He: sqrt(2/25) = 0.28


REUSE_PROBE = """
import resource, sys, numpy
import cnnkit
from cnnkit.engine import Model
if sys.argv[1] == "model":
    Model(cnnkit.parse("INPUT 4x4x1 -> FC-2"))  # a NumPy model tunes the heap

def step():  # a training step's pattern: a few arrays of several MiB, freed at its end
    arrays = [numpy.ones(2**20 + 1000) for _ in range(3)]
    del arrays

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_numpy_model_makes_later_steps_reuse_freed_memory():
    """After the first step, the same arrays come back from the heap, not as fresh pages
    from the kernel (each 8 MiB array would be ~2,000 page faults)."""
    def faults(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", REUSE_PROBE, mode], check=True,
                             capture_output=True, text=True)
        return int(run.stdout)

    from cnnkit.engine import heap
    if not heap.keep_freed_blocks():
        pytest.skip("the C library is not glibc")
    plain = faults("plain")
    if plain < 1000:
        pytest.skip(f"only {plain} page faults without tuning here (huge pages?)")
    assert faults("model") < plain / 10


def test_the_memory_model_knows_the_workspace_of_a_training_step(monkeypatch):
    """im2col buffers after training steps as the trainer runs them (no input gradient)
    equal the calculator's workspace term, here on one thread (on several, which thread
    takes which tile is up to the scheduler)."""
    from cnnkit.calculator.memory import executor_terms
    from cnnkit.engine import parallel

    monkeypatch.setattr(parallel, "WORKERS", 1)
    for spec in ("INPUT 32x32x3 -> CONV3-16 -> RELU -> FC-10",
                 "INPUT 16x16x3 -> CONV3-8 -> RELU -> CONV5-8(stride=2, round=floor) -> FC-4"):
        network = cnnkit.parse(spec)
        assert workspace_after_training_steps(network, 8) == executor_terms(
            network, 8, "float32", workers=1)["workspace"], spec


def test_a_first_conv_without_input_gradient_keeps_its_forward_tiles():
    """A 5x5 conv of a 1-channel image: its input gradient would need 28*28*25*32 values of
    im2col per image (larger than a tile), but a layer reading the input batch computes none
    in training, so its backward works in the forward's many-image tiles, with the same
    weight gradients."""
    layer, node = single_layer("conv", Shape(28, 28, 1), out_channels=32, kernel=(5, 5),
                               pad=(2, 2, 2, 2))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 28, 28, 1))
    dy = rng.standard_normal((64, 28, 28, 32))
    forward_tile = layer._chunks(64)[0][0]

    def grads(input_grad: bool):
        layer.input_grad = input_grad
        layer.forward([x], True)
        dx = layer.backward(dy)[0]
        return dx, {key: grad.copy() for key, grad in layer.grads.items()}, layer._chunks(64, True)

    dx, with_dx, tiles = grads(True)
    assert dx is not None and tiles[0][0].stop == 1  # one image per tile
    dx, without_dx, tiles = grads(False)
    assert dx is None and tiles[0][0] == forward_tile and forward_tile.stop > 1
    for key in with_dx:
        np.testing.assert_allclose(without_dx[key], with_dx[key], rtol=1e-12)


def test_blas_stays_on_one_thread_for_a_whole_pass(monkeypatch):
    """BLAS calls between the engine's split runs (here a Winograd weight transform) run on
    one BLAS thread too: a multi-threaded call would wake OpenBLAS's threads, which then spin
    and take cores from the engine's own.  The caller's setting is back afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from cnnkit.engine import parallel
    from cnnkit.engine.layers import winograd

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can see")
    monkeypatch.setattr(parallel, "WORKERS", 2)
    seen = []
    transform = winograd.weights

    def watched(*args, **kwargs):
        seen.append(blas_threads())
        return transform(*args, **kwargs)

    monkeypatch.setattr(winograd, "weights", watched)
    model = Model(cnnkit.parse("INPUT 8x8x32 -> CONV3-64 -> RELU -> FC-4"))
    before = blas_threads()
    with threadpool_limits(2, user_api="blas"):
        outside = blas_threads()
        logits = model.forward(np.ones((4, 8, 8, 32)))
        model.backward(np.ones_like(logits), input_grad=True)
        assert blas_threads() == outside
    assert seen and all(threads == [1] * len(outside) for threads in seen), seen
    assert blas_threads() == before


def test_a_max_pool_applies_the_relu_that_alone_feeds_it():
    """BN -> RELU -> POOL2: the pool applies the ReLU to its output (relu(max) = max(relu))
    and the in-place ReLU leaves its input as it is; outputs and gradients are bit for bit
    those of the ReLU applied first, in training, in evaluation, for a backward after an
    evaluating forward, and in ``activations`` (which needs the ReLU's own output).  (After
    a CONV the conv pools its own tiles: tests/test_pooled_conv.py.)"""
    from cnnkit.engine.layers import ReLU
    from cnnkit.engine.layers.pool import MaxPool

    network = cnnkit.parse("INPUT 8x8x2 -> CONV3-4 -> BN -> RELU -> POOL2 -> FC-3")
    fused, plain = Model(network, dtype="float64", seed=3), Model(network, dtype="float64",
                                                                  seed=3)
    relu, pool = fused.layers[3], fused.layers[4]
    assert isinstance(relu, ReLU) and isinstance(pool, MaxPool)
    assert relu.pooled_by is pool and pool.relu is relu
    plain.layers[3].pooled_by = plain.layers[4].relu = None
    x = np.round(np.random.default_rng(0).standard_normal((4, 8, 8, 2)) * 2)  # ties, zeros
    dy = np.random.default_rng(1).standard_normal((4, 3))
    for train in (True, False):
        np.testing.assert_array_equal(fused.forward(x, train), plain.forward(x, train))
        assert relu._y.min() < 0  # the ReLU left its input alone
        np.testing.assert_array_equal(fused.backward(dy), plain.backward(dy))
        for (_, _, a), (_, _, b) in zip(fused.parameters(), plain.parameters()):
            np.testing.assert_array_equal(a, b)
    shown = fused.activations(x)
    for a, b in zip(shown, plain.activations(x)):
        np.testing.assert_array_equal(a, b)
    assert shown[3].min() == 0  # the ReLU's own output
    # a ReLU read by more than the pool applies itself
    branched = Model(cnnkit.parse("INPUT 8x8x2 -> CONV3-4 -> RELU -> RES[POOL2 | POOL2]"))
    assert branched.layers[2].pooled_by is None
