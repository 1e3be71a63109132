"""The reference networks in specs/: every published number they must reproduce, exactly.

Published numbers come from each network's paper or reference implementation (named in the
spec's header); MAC counts that are only published rounded (torchvision's GFLOPS column)
are asserted exactly at the value cnnkit computes, which benchmarks/torch_model.py
confirmed with forward hooks on torch's Conv2d/Linear, and checked against the rounded
published figure.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import cnnkit

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# spec: (params, weights, biases, BN gamma+beta, BN running stats, MACs at the spec's input)
TOTALS = {
    "lenet5": (61_706, 61_470, 236, 0, 0, 416_520),
    "simpleconvnet": (433_890, 433_750, 140, 0, 0, 865_000),
    "alexnet": (62_378_344, 62_367_776, 10_568, 0, 0, 1_135_256_096),
    "zfnet": (62_357_608, 62_347_040, 10_568, 0, 0, 1_168_032_896),
    "vgg11": (132_863_336, 132_851_392, 11_944, 0, 0, 7_609_090_048),
    "vgg13": (133_047_848, 133_035_712, 12_136, 0, 0, 11_308_466_176),
    "vgg16": (138_357_544, 138_344_128, 13_416, 0, 0, 15_470_264_320),
    "vgg19": (143_667_240, 143_652_544, 14_696, 0, 0, 19_632_062_464),
    "keras_cifar10": (528_054, 527_432, 622, 0, 0, 1_762_184),
    "resnet18": (11_689_512, 11_678_912, 1_000, 9_600, 9_600, 1_814_073_344),
    "resnet34": (21_797_672, 21_779_648, 1_000, 17_024, 17_024, 3_663_761_408),
    "resnet50": (25_557_032, 25_502_912, 1_000, 53_120, 53_120, 4_089_184_256),
    "googlenet": (6_998_552, 6_990_272, 8_280, 0, 0, 1_582_671_872),
    "squeezenet1_0": (1_248_424, 1_244_448, 3_976, 0, 0, 818_924_576),
    "fashion_lenet": (1_663_370, 1_662_752, 618, 0, 0, 12_273_152),
    "small_vgg": (871_530, 870_176, 458, 896, 896, 19_094_528),
    "resnet20_cifar": (272_474, 270_896, 10, 1_568, 1_568, 40_813_184),
    "sentence_cnn": (110, 102, 8, 0, 0, 442),
}

# torchvision's GFLOPS column (which counts MACs) for the networks it ships
PUBLISHED_GMACS = {
    "vgg11": 7.61, "vgg13": 11.31, "vgg16": 15.47, "vgg19": 19.63,
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "squeezenet1_0": 0.82,
}

SPEC_FILES = sorted(SPECS.glob("*.txt"))


def load(name: str, **options) -> cnnkit.Network:
    return cnnkit.load(SPECS / f"{name}.txt", **options)


def summary(name: str):
    return load(name).summary()


def output(s, name: str) -> str:
    """The output of the one row called ``name``."""
    rows = [r for r in s.rows if r.name == name]
    assert len(rows) == 1, f"{len(rows)} rows named {name}"
    return rows[0].output


def last_output(s, prefix: str) -> str:
    """The output of the last row inside the block instance ``prefix`` (e.g. 'layer2.1/')."""
    rows = [r for r in s.rows if r.name.startswith(prefix)]
    assert rows, f"no rows under {prefix}"
    return rows[-1].output


# -- every spec ---------------------------------------------------------------------------


def test_every_spec_has_expected_totals():
    assert {p.stem for p in SPEC_FILES} == set(TOTALS)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_totals(path):
    s = cnnkit.load(path).summary()
    got = (s.params, s.weights, s.biases, s.other_params, s.state, s.macs)
    assert got == TOTALS[path.stem]


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_has_header_comment(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 2, "a spec starts with a comment saying what it is and its source"
    assert any(ch.isdigit() for ch in " ".join(header)), "the header gives published numbers"


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_round_to_torchvision_gflops(name):
    assert round(summary(name).macs / 1e9, 2) == PUBLISHED_GMACS[name]


# -- LeNet-5, SimpleConvNet ---------------------------------------------------------------


def test_lenet5_layers():
    s = summary("lenet5")
    rows = [(r.output, r.params) for r in s.rows if r.kind in ("conv", "pool", "fc")]
    assert rows == [
        ("28x28x6", 156), ("14x14x6", 0), ("10x10x16", 2_416), ("5x5x16", 0),
        ("120", 48_120), ("84", 10_164), ("10", 850),
    ]
    assert [r.kind for r in s.rows].count("tanh") == 4


def test_simpleconvnet_layers():
    s = summary("simpleconvnet")
    rows = [(r.output, r.params) for r in s.rows if r.kind in ("conv", "pool", "fc")]
    assert rows == [("24x24x30", 780), ("12x12x30", 0), ("100", 432_100), ("10", 1_010)]


def test_sentence_cnn_matches_the_figure():
    """Zhang & Wallace's Figure 1: region sizes 2, 3, 4 with two filters each give feature
    maps of 6, 5 and 4 words; 1-max pooling keeps one value per map, 6 in all."""
    s = summary("sentence_cnn")
    rows = [(r.name, r.output, r.params) for r in s.rows if r.kind in ("conv", "gmp", "concat", "fc")]
    assert rows == [
        ("b1/CONV2X5-2", "6x1x2", 22), ("b1/GMP", "1x1x2", 0),
        ("b2/CONV3X5-2", "5x1x2", 32), ("b2/GMP", "1x1x2", 0),
        ("b3/CONV4X5-2", "4x1x2", 42), ("b3/GMP", "1x1x2", 0),
        ("CAT", "1x1x6", 0), ("FC-2", "2", 14),
    ]


# -- AlexNet, ZFNet -----------------------------------------------------------------------


def test_alexnet_first_conv():
    first = summary("alexnet").rows[1]
    assert (first.kind, first.output, first.params) == ("conv", "55x55x96", 34_944)


def test_alexnet_shapes():
    s = summary("alexnet")
    outputs = [r.output for r in s.rows if r.kind in ("conv", "pool", "fc")]
    assert outputs == ["55x55x96", "27x27x96", "27x27x256", "13x13x256", "13x13x384",
                       "13x13x384", "13x13x256", "6x6x256", "4096", "4096", "1000"]
    assert [r.kind for r in s.rows].count("lrn") == 2


def test_alexnet_at_224_is_an_error():
    with pytest.raises(cnnkit.SpecError) as info:
        load("alexnet", input_shape="224x224x3")
    assert "54.25" in info.value.message


def test_zfnet_paper_shapes():
    s = summary("zfnet")
    outputs = [r.output for r in s.rows if r.kind in ("conv", "pool", "fc")]
    assert outputs == ["110x110x96", "55x55x96", "26x26x256", "13x13x256", "13x13x384",
                       "13x13x384", "13x13x256", "6x6x256", "4096", "4096", "1000"]


# -- VGG ----------------------------------------------------------------------------------

# The CS231n notes' VGG-16 table: output shape, memory (activations) and weights per row.
CS231N_VGG16 = [
    ("INPUT", "224x224x3", 150_528, 0),
    ("CONV3-64", "224x224x64", 3_211_264, 1_728),
    ("CONV3-64", "224x224x64", 3_211_264, 36_864),
    ("POOL2", "112x112x64", 802_816, 0),
    ("CONV3-128", "112x112x128", 1_605_632, 73_728),
    ("CONV3-128", "112x112x128", 1_605_632, 147_456),
    ("POOL2", "56x56x128", 401_408, 0),
    ("CONV3-256", "56x56x256", 802_816, 294_912),
    ("CONV3-256", "56x56x256", 802_816, 589_824),
    ("CONV3-256", "56x56x256", 802_816, 589_824),
    ("POOL2", "28x28x256", 200_704, 0),
    ("CONV3-512", "28x28x512", 401_408, 1_179_648),
    ("CONV3-512", "28x28x512", 401_408, 2_359_296),
    ("CONV3-512", "28x28x512", 401_408, 2_359_296),
    ("POOL2", "14x14x512", 100_352, 0),
    ("CONV3-512", "14x14x512", 100_352, 2_359_296),
    ("CONV3-512", "14x14x512", 100_352, 2_359_296),
    ("CONV3-512", "14x14x512", 100_352, 2_359_296),
    ("POOL2", "7x7x512", 25_088, 0),
    ("FC-4096", "4096", 4_096, 102_760_448),
    ("FC-4096", "4096", 4_096, 16_777_216),
    ("FC-1000", "1000", 1_000, 4_096_000),
]


def test_vgg16_rows_match_cs231n_table():
    s = summary("vgg16")
    rows = [(r.name, r.output, r.activations, r.weights)
            for r in s.rows if r.kind in ("input", "conv", "pool", "fc")]
    assert rows == CS231N_VGG16


def test_vgg16_activations_per_image():
    s = summary("vgg16")
    table_rows = [r for r in s.rows if r.kind in ("input", "conv", "pool", "fc")]
    assert sum(r.activations for r in table_rows) == 15_237_608
    assert sum(a for _, _, a, _ in CS231N_VGG16) == 15_237_608


def test_vgg16_weights_and_biases():
    s = summary("vgg16")
    assert (s.weights, s.biases, s.macs) == (138_344_128, 13_416, 15_470_264_320)
    assert sum(r.biases for r in s.rows if r.kind == "conv") == 4_224


@pytest.mark.parametrize("name, convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13),
                                         ("vgg19", 16)])
def test_vgg_depth(name, convs):
    kinds = [r.kind for r in summary(name).rows]
    assert (kinds.count("conv"), kinds.count("pool"), kinds.count("fc")) == (convs, 5, 3)


# -- Keras CIFAR-10 -----------------------------------------------------------------------


def test_keras_cifar10_matches_keras_summary():
    s = summary("keras_cifar10")
    rows = [(r.kind, r.output, r.params) for r in s.rows
            if r.kind in ("conv", "pool", "flatten", "fc")]
    assert rows == [
        ("conv", "32x32x16", 208), ("pool", "16x16x16", 0),
        ("conv", "16x16x32", 2_080), ("pool", "8x8x32", 0),
        ("conv", "8x8x64", 8_256), ("pool", "4x4x64", 0),
        ("flatten", "1024", 0),
        ("fc", "500", 512_500), ("fc", "10", 5_010),
    ]
    assert s.params == 528_054


def test_keras_same_padding_is_after():
    convs = [n for n in load("keras_cifar10").nodes if n.kind == "conv"]
    assert all(n.attrs["pad"] == (0, 1, 0, 1) for n in convs)


# -- Inception bottleneck (seed-003 example) ------------------------------------------------


def test_inception_bottleneck_macs():
    direct = cnnkit.parse("INPUT 28x28x192 -> CONV5-32").summary()
    reduced = cnnkit.parse("INPUT 28x28x192 -> CONV1-16 -> CONV5-32").summary()
    assert direct.macs == 120_422_400
    assert reduced.macs == 12_443_648
    assert direct.output_shape == reduced.output_shape == (28, 28, 32)


def test_three_stacked_conv3_see_7x7():
    s = cnnkit.parse("INPUT 32x32x3 -> CONV3-8 -> CONV3-8 -> CONV3-8").summary()
    assert [r.receptive_field for r in s.rows] == [(1, 1), (3, 3), (5, 5), (7, 7)]


# -- ResNet -------------------------------------------------------------------------------

RESNET_STAGES = {
    "resnet18": ["56x56x64", "28x28x128", "14x14x256", "7x7x512"],
    "resnet34": ["56x56x64", "28x28x128", "14x14x256", "7x7x512"],
    "resnet50": ["56x56x256", "28x28x512", "14x14x1024", "7x7x2048"],
}


@pytest.mark.parametrize("name", sorted(RESNET_STAGES))
def test_resnet_stage_shapes(name):
    s = summary(name)
    assert output(s, "stem.1/CONV7-64") == "112x112x64"
    assert output(s, "stem.1/MAXPOOL3") == "56x56x64"
    stages = [last_output(s, f"layer{i}.1/") for i in range(1, 5)]
    assert stages == RESNET_STAGES[name]
    assert s.rows[-2].output == "1x1x" + RESNET_STAGES[name][-1].split("x")[-1]  # GAP
    assert s.rows[-1].output == "1000"


@pytest.mark.parametrize("name, blocks", [("resnet18", 8), ("resnet34", 16), ("resnet50", 16)])
def test_resnet_block_counts(name, blocks):
    s = summary(name)
    assert sum(r.kind == "add" for r in s.rows) == blocks
    assert all(r.biases == 0 for r in s.rows if r.kind == "conv")
    # every convolution is followed by BN
    convs = [r.index for r in s.rows if r.kind == "conv"]
    assert all(s.rows[i + 1].kind == "bn" for i in convs)


def test_resnet_macs():
    assert summary("resnet18").macs == 1_814_073_344
    assert summary("resnet34").macs == 3_663_761_408
    assert summary("resnet50").macs == 4_089_184_256


def test_resnet50_strides_on_the_3x3():
    rows = [r for r in summary("resnet50").rows if r.name.startswith("layer2.1/down128.1/")]
    convs = [(r.name.split("/")[-1], r.output) for r in rows if r.kind == "conv"]
    assert convs == [("CONV1-128", "56x56x128"), ("CONV3-128", "28x28x128"),
                     ("CONV1-512", "28x28x512"), ("CONV1-512", "28x28x512")]


# -- GoogLeNet ----------------------------------------------------------------------------


def test_googlenet_paper_shapes():
    s = summary("googlenet")
    outputs = [r.output for r in s.rows
               if (r.kind in ("conv", "pool") and "/" not in r.name) or r.kind == "concat"]
    assert outputs == [
        "112x112x64", "56x56x64", "56x56x64", "56x56x192", "28x28x192",
        "28x28x256", "28x28x480", "14x14x480",
        "14x14x512", "14x14x512", "14x14x512", "14x14x528", "14x14x832", "7x7x832",
        "7x7x832", "7x7x1024", "1x1x1024",
    ]
    assert s.rows[-2].output == "1000"  # FC-1000, then SOFTMAX
    assert [r.kind for r in s.rows].count("lrn") == 2
    assert [r.kind for r in s.rows if r.kind in ("conv", "bn")].count("bn") == 0


def test_googlenet_inception_3a_as_table():
    s = summary("googlenet")
    rows = [r for r in s.rows if r.name.startswith("inception3a.1/")]
    assert sum(r.weights for r in rows) == 163_328  # table: 159K (1K = 1024)
    assert sum(r.macs for r in rows) == 128_049_152  # table: 128M


# -- SqueezeNet ---------------------------------------------------------------------------


def test_squeezenet_shapes():
    s = summary("squeezenet1_0")
    assert s.rows[1].output == "109x109x96"
    pools = [r.output for r in s.rows if r.kind == "pool"]
    assert pools == ["54x54x96", "27x27x256", "13x13x512"]
    fires = [r.output for r in s.rows if r.kind == "concat"]
    assert fires == ["54x54x128", "54x54x128", "54x54x256", "27x27x256", "27x27x384",
                     "27x27x384", "27x27x512", "13x13x512"]
    assert output(s, "CONV1-1000") == "13x13x1000"
    assert s.output_shape == (1, 1, 1000)


# -- the small Fashion-MNIST nets -----------------------------------------------------------


@pytest.mark.parametrize("name", ["fashion_lenet", "small_vgg"])
def test_fashion_nets_are_cheap(name):
    s = summary(name)
    assert s.input_shape == (28, 28, 1)
    assert s.output_shape == (1, 1, 10)
    assert s.macs < 25_000_000 and s.params < 2_000_000


# -- cross-check with PyTorch (skipped without torch) --------------------------------------


@pytest.fixture(scope="module")
def torch_model():
    torch = pytest.importorskip("torch")
    path = ROOT / "benchmarks" / "torch_model.py"
    spec = importlib.util.spec_from_file_location("cnnkit_bench_torch_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return torch, module


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_torch_param_counts(torch_model, path):
    torch, tm = torch_model
    network = cnnkit.load(path)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = tm.build(network)
    count = tm.count_params(model)
    params, weights, biases, other, state, _ = TOTALS[path.stem]
    assert (count.params, count.weights, count.biases, count.other, count.state) == (
        params, weights, biases, other, state)


@pytest.mark.parametrize("name", ["lenet5", "simpleconvnet", "keras_cifar10",
                                  "fashion_lenet", "small_vgg"])
def test_torch_shapes_and_macs_small_nets(torch_model, name):
    _, tm = torch_model
    result = tm.compare(load(name), forward=True)
    assert result.mismatches == []
    assert result.torch["macs"] == TOTALS[name][5]
