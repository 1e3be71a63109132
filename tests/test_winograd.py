"""Winograd F(4x4, 3x3) and F(4x4, 5x5) against the im2col path they replace, and where the
calculator uses them.

The two algorithms compute the same sums in different orders, so in float64 they agree to
rounding (1e-12 relative) and in float32 to ~1e-5 relative (the transforms' coefficients,
up to 8 and down to 1/90, cost a decimal digit; the engine promises 1e-4); the gradients
are also checked against centred differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_support import workspace_after_training_steps
from test_gradients import check_layer

import cnnkit
from cnnkit.calculator import convolution
from cnnkit.calculator.memory import executor_terms
from cnnkit.engine import Model, parallel
from cnnkit.engine.layers import Conv, winograd

# odd and even maps, no/asymmetric/wide padding, channel counts that are not powers of two
SPECS = [
    "INPUT 9x7x3 -> CONV3-5 -> RELU -> CONV3-4 -> FC-3",
    "INPUT 8x8x4 -> CONV3-6(pad=0) -> CONV3-3(pad=2) -> FC-2",
    "INPUT 6x7x2 -> CONV3-3(pad=0x1:2) -> CONV3-4(pad=1:0, bias=false) -> FC-2",
    "INPUT 5x5x3 -> CONV3-4(pad=0) -> CONV3-2(pad=2) -> GAP -> FC-2",
    "INPUT 9x7x3 -> CONV5-5 -> RELU -> CONV5-4 -> FC-3",  # F(4x4, 5x5): odd maps, 8x8 tiles
    "INPUT 8x9x2 -> CONV5-3(pad=0) -> CONV5-4(pad=4) -> CONV3-2 -> FC-2",
    "INPUT 7x6x3 -> CONV5-3(pad=0x1:3) -> CONV5-2(pad=3:1, bias=false) -> FC-2",
    "INPUT 5x6x2 -> CONV3-3(pad=3) -> CONV5-2(pad=1x5) -> FC-2",  # wider than the kernel
]


def run(spec: str, method: str, dtype: str, monkeypatch, batch: int = 5):
    """Output, input gradient and parameter gradients of one forward/backward of ``spec``
    (the text, or a file's path)."""
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", method)
    network = cnnkit.load(spec) if spec.endswith(".txt") else cnnkit.parse(spec)
    model = Model(network, dtype=dtype, seed=3)
    convs = [layer for layer in model.layers if isinstance(layer, Conv)]
    assert method == "auto" or {layer.algorithm for layer in convs} == {method}
    rng = np.random.default_rng(0)
    shape = network.input_shape
    x = rng.standard_normal((batch, shape.h, shape.w, shape.c))
    y = model.forward(x, train=True)
    dx = model.backward(rng.standard_normal(y.shape).astype(dtype))
    grads = {name: grad.copy() for name, _, grad in model.parameters()}
    return y, dx, grads


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype, bound", [("float64", 1e-12), ("float32", 5e-5)])
def test_winograd_computes_what_im2col_computes(spec, dtype, bound, monkeypatch):
    ours = run(spec, "winograd", dtype, monkeypatch)
    theirs = run(spec, "im2col", dtype, monkeypatch)
    assert ours[0].shape == theirs[0].shape
    assert relative(ours[0], theirs[0]) < bound  # forward
    assert relative(ours[1], theirs[1]) < bound  # input gradient
    for name in theirs[2]:
        assert relative(ours[2][name], theirs[2][name]) < bound, name


def test_whole_networks_in_float32_stay_within_1e_4(monkeypatch):
    """The issue's bound for the fast paths, over whole networks in float32: M3's logits
    (six 3x3 layers, five of them Winograd by default) and M1's (its 5x5 layer from 32 to 64
    channels by F(4x4, 5x5)), and every gradient of a deep stack
    without max pooling.  (M3's gradients are not compared: a rounding can move the
    maximum of a pooling window to another pixel, which routes its gradient elsewhere,
    whatever the convolution algorithm.)"""
    for spec in ("benchmarks/specs/m3.txt", "benchmarks/specs/m1.txt"):
        ours = run(spec, "auto", "float32", monkeypatch, batch=4)
        theirs = run(spec, "im2col", "float32", monkeypatch, batch=4)
        assert relative(ours[0], theirs[0]) < 1e-4, spec
    stack = "INPUT 16x16x3 -> CONV3-32 -> RELU -> [CONV3-64 -> RELU]*3 -> FC-10"
    ours, theirs = (run(stack, method, "float32", monkeypatch, batch=4)
                    for method in ("auto", "im2col"))
    assert relative(ours[1], theirs[1]) < 1e-4
    for name in theirs[2]:
        assert relative(ours[2][name], theirs[2][name]) < 1e-4, name


def test_winograd_in_threads_equals_one_thread(monkeypatch):
    """Tiles spread over threads give the same result as one thread (partial weight
    gradients are added in chunk order)."""
    spec = "INPUT 12x12x8 -> CONV3-8 -> RELU -> CONV3-8 -> FC-3"
    threaded = run(spec, "winograd", "float64", monkeypatch, batch=9)
    monkeypatch.setattr(parallel, "WORKERS", 1)
    single = run(spec, "winograd", "float64", monkeypatch, batch=9)
    for a, b in zip(threaded[:2], single[:2]):
        assert relative(a, b) < 1e-13
    for name in single[2]:
        assert relative(threaded[2][name], single[2][name]) < 1e-13


@pytest.mark.parametrize("spec", ["INPUT 5x6x2 -> CONV3-3", "INPUT 4x4x3 -> CONV3-2(pad=0x1:2)",
                                  "INPUT 5x6x2 -> CONV5-3", "INPUT 6x5x2 -> CONV5-2(pad=0x3:1)"])
def test_winograd_gradients_match_centred_differences(spec, monkeypatch):
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "winograd")
    network = cnnkit.parse(spec)
    node = network.nodes[1]
    layer = Conv(node, [network.nodes[0].out], np, "float64")
    assert layer.algorithm == "winograd"
    rng = np.random.default_rng(2)
    for array in layer.params.values():
        array[...] = rng.standard_normal(array.shape)
    shape = network.input_shape
    check_layer(layer, [rng.standard_normal((3, shape.h, shape.w, shape.c))])


def test_the_input_gradient_multiplies_by_u_transposed_in_memory_order():
    """NumPy's stacked matmul is 30-40% slower with a transposed view as its second operand,
    so backward makes U^T once, contiguous."""
    w = np.random.default_rng(0).standard_normal((5, 5, 3, 4))
    u_t = winograd.transposed_weights(w, np)
    assert u_t.shape == (64, 4, 3) and u_t.flags.c_contiguous  # 8x8 tiles for 5x5
    np.testing.assert_array_equal(u_t, winograd.weights(w, np).transpose(0, 2, 1))


@pytest.mark.parametrize("r, name", [(3, "B_T"), (3, "A_T"), (5, "B_T"), (5, "A_T"), (5, "B")])
def test_both_forms_of_the_separable_transform_are_the_kronecker_product(r, name):
    """``_on_both_axes`` computes kron(a, a) x along one tile axis, then the other: on the
    CPU the first product as a batch (faster with OpenBLAS), on CuPy as one product (run
    here with a stand-in module that only offers NumPy's matmul)."""
    import types

    a = winograd.transforms(r)[name]
    p, q = a.shape
    x = np.random.default_rng(1).standard_normal((q * q, 3 * 5))
    work = {}

    def buffer(key, shape):
        return work.setdefault((key, shape), np.empty(shape))

    expected = np.kron(a, a) @ x
    for xp in (np, types.SimpleNamespace(matmul=np.matmul)):
        out = np.empty((p * p, x.shape[1]))
        winograd._on_both_axes(a, x, out, buffer, xp)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_the_transforms_are_lavin_and_grays_and_compute_correlations():
    """``transforms`` builds F(4x4, 3x3)'s matrices as printed in Lavin & Gray (2016), and
    both algorithms' 1-D forms compute the correlation of a tile (6 values for 3x3, 8 for
    5x5) exactly (float64)."""
    published_b_t = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                     [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    published_g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
    published_a_t = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                     [0, 1, -1, 8, -8, 1]]
    f43 = winograd.transforms(3)
    assert np.array_equal(f43["B_T"], published_b_t)
    assert np.allclose(f43["G"], published_g, rtol=1e-15, atol=0)
    assert np.array_equal(f43["A_T"], published_a_t)
    f45 = winograd.transforms(5)
    assert f45["B_T"].shape == (8, 8) and f45["A_T"].shape == (4, 8)
    assert np.array_equal(f45["A_T"][1, :7], [0, 1, -1, 2, -2, 0.5, -0.5])  # the points
    rng = np.random.default_rng(1)
    for r in (3, 5):
        t = winograd.transforms(r)
        d, g = rng.standard_normal(r + 3), rng.standard_normal(r)
        direct = [d[i:i + r] @ g for i in range(4)]
        assert np.allclose(t["A_T"] @ ((t["G"] @ g) * (t["B_T"] @ d)), direct, rtol=1e-13)


def conv_attrs(spec: str):
    network = cnnkit.parse(spec)
    node = network.nodes[1]
    return node.attrs, network.nodes[0].out.c, (node.out.h, node.out.w)


@pytest.mark.parametrize("spec, expected", [
    ("INPUT 56x56x128 -> CONV3-128", "winograd"),  # measured 23-44% faster
    ("INPUT 28x28x256 -> CONV3-256", "winograd"),
    ("INPUT 32x32x64 -> CONV3-64", "winograd"),
    ("INPUT 16x16x32 -> CONV3-64", "winograd"),
    ("INPUT 8x8x256 -> CONV3-256", "winograd"),  # 8x8: two blocks a side, none wasted
    ("INPUT 7x7x256 -> CONV3-256", "im2col"),  # 7x7 computes 8x8 and drops the rest
    ("INPUT 32x32x16 -> CONV3-32", "winograd"),  # 16 channels: 0.61-0.84x
    ("INPUT 32x32x8 -> CONV3-16", "im2col"),  # 8: 0.90x, the transforms eat the saving
    ("INPUT 32x32x32 -> CONV3-32", "winograd"),  # 32 both sides: 4-24% faster (EPYC)
    ("INPUT 28x28x32 -> CONV5-32", "winograd"),  # F(4x4, 5x5), 32 both sides: 40% faster
    ("INPUT 16x16x64 -> CONV3-32", "winograd"),  # one side wide enough
    ("INPUT 14x14x512 -> CONV3-512", "im2col"),  # wide: 16-24% slower
    ("INPUT 32x32x3 -> CONV3-64", "im2col"),  # a first layer
    ("INPUT 56x56x128 -> CONV3-128(stride=2, round=floor)", "im2col"),  # Winograd does not apply
    ("INPUT 14x14x128 -> CONV5-128", "winograd"),  # F(4x4, 5x5): measured 43% faster
    ("INPUT 27x27x96 -> CONV5-256", "winograd"),  # AlexNet's second layer
    ("INPUT 7x7x64 -> CONV5-64", "winograd"),  # 7x7: 8x8 computed, still 37% faster
    ("INPUT 4x4x64 -> CONV5-64", "winograd"),  # one block: 39% faster
    ("INPUT 3x3x64 -> CONV5-64", "im2col"),  # most of one block dropped
    ("INPUT 14x14x16 -> CONV5-32", "winograd"),  # 16 channels: 24-40% faster
    ("INPUT 14x14x8 -> CONV5-8", "winograd"),  # 8: 0.60-0.88x
    ("INPUT 14x14x4 -> CONV5-8", "im2col"),  # fewer: not measured to win
    ("INPUT 14x14x512 -> CONV5-512", "im2col"),  # 512: 10% slower
    ("INPUT 28x28x1 -> CONV5-32", "im2col"),  # a first layer: 41% slower
    ("INPUT 56x56x128 -> CONV7-128", "im2col"),  # Winograd does not apply
    ("INPUT 56x56x128 -> CONV5-128(stride=2, round=floor)", "im2col"),
    ("INPUT 56x56x128 -> CONV3-128(dilation=2)", "im2col"),
    ("INPUT 56x56x128 -> CONV3-128(groups=2)", "im2col"),
])
def test_the_calculator_picks_winograd_only_where_it_was_measured_to_win(spec, expected,
                                                                         monkeypatch):
    monkeypatch.delenv("CNNKIT_CONV_ALGORITHM", raising=False)
    assert convolution.algorithm(*conv_attrs(spec)) == expected


@pytest.mark.parametrize("spec, im2col_layers", [("m1", 1), ("m2", 1), ("m3", 1)])
def test_the_benchmark_networks_use_winograd_after_their_first_layers(spec, im2col_layers,
                                                                      monkeypatch):
    """M1-M3 (benchmarks/specs) are what ``benchmarks.train_step --im2col`` measures: im2col
    for the first layer, then M1's 5x5 layer by F(4x4, 5x5)
    and the others' by F(4x4, 3x3)."""
    monkeypatch.delenv("CNNKIT_CONV_ALGORITHM", raising=False)
    model = Model(cnnkit.load(f"benchmarks/specs/{spec}.txt"))
    methods = [layer.algorithm for layer in model.layers if isinstance(layer, Conv)]
    assert methods == ["im2col"] * im2col_layers + ["winograd"] * (len(methods) - im2col_layers)


def test_the_override_is_checked(monkeypatch):
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "winograd")
    assert convolution.algorithm(*conv_attrs("INPUT 8x8x3 -> CONV3-4")) == "winograd"
    assert convolution.algorithm(*conv_attrs("INPUT 9x9x3 -> CONV3-4(stride=2)")) == "im2col"
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "im2col")
    assert convolution.algorithm(*conv_attrs("INPUT 32x32x64 -> CONV3-64")) == "im2col"
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "fast")
    with pytest.raises(ValueError, match="CNNKIT_CONV_ALGORITHM='fast'"):
        convolution.algorithm(*conv_attrs("INPUT 8x8x3 -> CONV3-4"))


def test_the_memory_model_knows_winograds_work_arrays(monkeypatch):
    """The engine's work arrays after training steps equal the calculator's workspace term
    for Winograd layers too (one thread, as the im2col test in test_engine.py)."""
    monkeypatch.setattr(parallel, "WORKERS", 1)
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "winograd")
    for spec in ("INPUT 15x15x3 -> CONV3-8 -> RELU -> CONV3-16(pad=2) -> RELU -> FC-10",
                 "INPUT 8x8x4 -> CONV3-4(pad=0) -> CONV5-4 -> CONV3-6 -> FC-2"):
        network = cnnkit.parse(spec)
        assert workspace_after_training_steps(network, 8) == executor_terms(
            network, 8, "float32", workers=1)["workspace"], spec


@pytest.mark.parametrize("method, images", [("winograd", 7), ("im2col", 3)])
def test_winograd_tiles_have_their_own_budget_and_the_memory_model_follows(method, images,
                                                                          monkeypatch):
    """A Winograd tile's largest array stays under 2 MiB (its passes over the tile are
    faster in a core's cache), an im2col tile's under 4 MiB; the estimate cuts the batch the
    same way.  32x32x32 -> 32, per image: Winograd's products 36*64*32 values (288 KiB, 7
    images in 2 MiB), im2col's rows 1024*288 (1152 KiB, 3 images in 4 MiB)."""
    monkeypatch.setattr(parallel, "WORKERS", 1)
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", method)
    network = cnnkit.parse("INPUT 32x32x32 -> CONV3-32 -> RELU -> FC-10")
    layer = Model(network, dtype="float32").layers[1]
    assert layer.algorithm == method
    tiles = [tile.stop - tile.start for chunk in layer._chunks(16) for tile in chunk]
    assert tiles == [images] * (16 // images) + [16 % images]
    assert workspace_after_training_steps(network, 16) == executor_terms(
        network, 16, "float32", workers=1)["workspace"]


@pytest.mark.parametrize("batch", [3, 16])
def test_the_memory_model_knows_winograds_kernel_sized_arrays(batch, monkeypatch):
    """Beside its input gradient and the workspace, a Winograd layer's backward allocates
    the transformed kernels and its chunks' weight gradients (36 values per kernel pair
    while summed): the memory model's ``_kernel_arrays``, which bounds them from above by
    less than one kernel transform."""
    from cnnkit.calculator.memory import _kernel_arrays, masked_layers
    from cnnkit.training.resources import peak_memory

    monkeypatch.delenv("CNNKIT_CONV_ALGORITHM", raising=False)
    network = cnnkit.parse("INPUT 8x8x64 -> RELU -> CONV3-64")
    node = network.nodes[2]
    layer = Conv(node, [network.nodes[1].out], np, "float32")
    assert layer.algorithm == "winograd"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 8, 8, 64)).astype(np.float32)
    dy = rng.standard_normal((batch, 8, 8, 64)).astype(np.float32)
    layer.forward([x], True)
    layer.backward(dy)  # the workspace has grown, for the threads that took a chunk

    def workspace() -> int:  # a thread that took none the first time grows it now
        return sum(array.nbytes for array in layer.workspace._arrays.values())

    before = workspace()
    with peak_memory(np) as measured:
        dx = layer.backward(dy)[0]
    grown = workspace() - before
    modelled = 4 * _kernel_arrays(network, node, batch, 4, parallel.workers(np), "cpu",
                                 masked_layers(network))
    transform = 4 * 36 * 64 * 64
    # tracemalloc also counts the Python objects of the threads' work (futures, frames,
    # result lists: 7-8 KiB when both threads' sums overlap), far below the smallest array
    # the model counts (one chunk's weight gradient, 144 KiB), so a missing term still fails
    bookkeeping = 32 * 1024
    kernel_sized = measured["peak_bytes"] - dx.nbytes - grown
    assert modelled - transform <= kernel_sized <= modelled + bookkeeping


def test_a_training_forward_keeps_v_for_the_weight_gradient(monkeypatch):
    """Backward after a training forward transforms no input tile (it reads the V forward
    kept, 36 values per tile and channel); after an evaluating forward, which keeps none, it
    transforms them again, with the same gradients."""
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "winograd")
    network = cnnkit.parse("INPUT 9x7x4 -> RELU -> CONV3-5 -> FC-3")
    layer = Model(network, seed=1).layers[2]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 9, 7, 4)).astype(np.float32)
    dy = rng.standard_normal((6, 9, 7, 5)).astype(np.float32)
    calls = []
    transform = winograd.transform_input
    monkeypatch.setattr(winograd, "transform_input",
                        lambda *args, **kwargs: calls.append(1) or transform(*args, **kwargs))

    layer.forward([x], True)
    blocks = 3 * 2  # F(4x4, 3x3) blocks of a 9x7 map
    assert layer._kept.shape == (36, 6 * blocks * 4)
    forward_calls = len(calls)
    trained = [layer.backward(dy)[0], *(grad.copy() for grad in layer.grads.values())]
    assert len(calls) == forward_calls  # none in backward

    layer.forward([x], False)
    assert layer._kept is None
    evaluated = [layer.backward(dy)[0], *layer.grads.values()]
    assert len(calls) > 2 * forward_calls
    for a, b in zip(trained, evaluated):
        np.testing.assert_array_equal(a, b)


def test_training_steps_of_one_batch_size_reuse_the_kept_transform(monkeypatch):
    """V is one array for all training steps of a batch size (made fresh, one of M3's 38 MB
    would be page-faulted in and zeroed every step), replaced when the batch size changes
    and dropped by an evaluating forward."""
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "winograd")
    layer = Model(cnnkit.parse("INPUT 8x8x4 -> CONV3-5 -> FC-3"), seed=1).layers[1]
    rng = np.random.default_rng(0)

    def forward(batch: int, train: bool = True):
        layer.forward([rng.standard_normal((batch, 8, 8, 4)).astype(np.float32)], train)
        return layer._kept

    first = forward(6)
    assert forward(6) is first
    assert forward(4).shape == (36, 4 * 4 * 4) and layer._kept is not first
    assert forward(4, train=False) is None


def test_the_memory_model_counts_the_kept_v(monkeypatch):
    """Winograd's V is a kept activation: 36 values per 6x6 tile and input channel (an 8x8
    map of 64 channels has 2x2 tiles: 9216 values per image, 2.25x the input)."""
    monkeypatch.delenv("CNNKIT_CONV_ALGORITHM", raising=False)
    spec = "INPUT 8x8x64 -> CONV3-64 -> FC-2"
    kept = 4096 + 4096 + 2  # the input batch (the conv's input), the FC's input, the logits
    assert executor_terms(cnnkit.parse(spec), 8)["activations"] == kept + 36 * 4 * 64
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "im2col")
    assert executor_terms(cnnkit.parse(spec), 8)["activations"] == kept
    assert convolution.kept_transform(*conv_attrs(spec)[:1], cnnkit.parse(spec).nodes[0].out,
                                      cnnkit.parse(spec).nodes[1].out) == 0


def test_the_input_gradients_sums_fit_the_work_arrays_the_memory_model_counts(monkeypatch):
    """The input gradient adds the tiles up in dV's array, the padded input's size: on a
    4x4 map (forced Winograd, one block) that is larger than dV, and the model says so."""
    from cnnkit.calculator.convolution import WinogradTiling
    from cnnkit.calculator.memory import executor_terms
    from cnnkit.engine import parallel

    values = WinogradTiling((4, 4), (1, 1, 1, 1), 3).values(2, 2)
    assert values["transformed"] == values["padded"] == 8 * 8 * 2 > 36 * 1 * 2
    monkeypatch.setattr(parallel, "WORKERS", 1)
    monkeypatch.setenv("CNNKIT_CONV_ALGORITHM", "winograd")
    network = cnnkit.parse("INPUT 4x4x2 -> CONV3-2 -> RELU -> CONV3-2 -> FC-3")
    assert workspace_after_training_steps(network, 4) == executor_terms(
        network, 4, "float32", workers=1)["workspace"]
