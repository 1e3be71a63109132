"""cnnkit's forward and backward agree with PyTorch on the same weights (float64).

Optional: skipped when torch is not installed.  Each case runs ``benchmarks.agreement``
(eval mode and train mode, dropout with cnnkit's masks) and requires every relative error
(logits, loss, each parameter gradient, input gradient, BN running statistics) below 1e-9.
"""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cnnkit  # noqa: E402
from benchmarks import agreement as agree  # noqa: E402
from cnnkit.interop import layout  # noqa: E402

TOLERANCE = 1e-9
QUANTITIES = ("forward", "loss", "param_grad", "input_grad", "state")

# Small networks for the layer options the specs/ networks do not all reach.
HAND_WRITTEN = {
    "res_projection_bn": """
        INPUT 9x9x3 -> CONV3-8 -> BN -> RELU
        -> RES[ CONV3-8 -> BN -> RELU -> CONV3-8 -> BN ] -> RELU
        -> RES[ CONV3-16(stride=2, round=floor, bias=false) -> BN -> RELU -> CONV3-16 -> BN
              | CONV1-16(stride=2, round=floor, bias=false) -> BN ] -> RELU
        -> GAP -> FC-5
    """,
    "cat_branches": """
        INPUT 8x8x4
        -> CAT[ CONV1-4 -> RELU | CONV3-6 -> RELU -> CONV3-3
              | MAXPOOL3(stride=1, pad=1) -> CONV1-2 | ID ]
        -> CONV3-5(stride=2, round=floor) -> RELU -> FC-6
    """,
    "same_padding": """
        INPUT 11x10x2
        -> CONV2-6(pad=same) -> RELU -> CONV4-6(pad=same) -> RELU
        -> CONV3-8(stride=2, pad=same) -> RELU -> CONV4x2-5(stride=2x1, pad=same) -> RELU
        -> FC-4
    """,
    "dilation_groups": """
        INPUT 12x12x4
        -> CONV3-8(dilation=2) -> RELU -> CONV3-8(groups=2) -> RELU
        -> CONV3-8(groups=8) -> RELU
        -> CONV3x5-6(dilation=2, stride=2, round=floor) -> RELU
        -> GAP -> FC-3
    """,
    "strided_floor_pools": """
        INPUT 14x14x3
        -> CONV3-6(stride=2, pad=0, round=floor) -> RELU
        -> MAXPOOL3(stride=2, pad=1, round=ceil) -> LRELU(0.1)
        -> CONV1-6 -> AVGPOOL3(stride=1, pad=1) -> TANH
        -> AVGPOOL2(stride=1) -> SIGMOID -> FC-5
    """,
    "lrn_ceil_pools": """
        INPUT 13x13x7
        -> CONV3-9 -> RELU -> LRN(5) -> MAXPOOL3(stride=2, round=ceil)
        -> CONV3-10 -> LRN(3, alpha=0.01, beta=0.6, k=1) -> AVGPOOL3(stride=2, round=ceil)
        -> FC-4
    """,
    "avg_pool_overhang": """
        INPUT 6x6x2 -> AVGPOOL3(stride=2, pad=1, round=ceil) -> CONV1-3 -> RELU -> FC-3
    """,
    "flatten_bn_cat": """
        INPUT 6x5x3
        -> CONV3-4 -> RELU -> FLATTEN -> BN -> DROPOUT(0.3)
        -> CAT[ FC-7 -> RELU | ID | FC-3 ]
        -> BN -> FC-5 -> SOFTMAX
    """,
}

SPEC_FILES = ["lenet5", "simpleconvnet", "keras_cifar10", "fashion_lenet", "small_vgg"]


def check(result: agree.Agreement, modes=("eval", "train")) -> None:
    assert set(result.modes) == set(modes)
    for mode, errors in result.modes.items():
        for quantity in QUANTITIES:
            value = getattr(errors, quantity)
            assert value < TOLERANCE, (
                f"{result.name} ({mode}): {quantity} relative error {value:.2e}"
                + (f" (worst: {errors.worst_param})" if quantity == "param_grad" else ""))


@pytest.mark.parametrize("name", SPEC_FILES)
def test_spec_files(name):
    check(agree.agreement(ROOT / "specs" / f"{name}.txt", batch=4))


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_layer_options(name):
    check(agree.agreement(cnnkit.parse(HAND_WRITTEN[name]), batch=4, name=name))


@pytest.mark.slow
def test_resnet18_at_batch_1():
    """The real 224x224 input; train mode only (eval-mode BN is covered above), ~10 s."""
    result = agree.agreement(ROOT / "specs" / "resnet18.txt", batch=1, modes=("train",))
    check(result, modes=("train",))


def test_flatten_order_and_dropout_masks_matter(monkeypatch):
    """The comparison is not vacuous: dropping the FLATTEN reordering, or torch ignoring
    cnnkit's dropout masks, is caught."""
    spec = ROOT / "specs" / "keras_cifar10.txt"
    with monkeypatch.context() as m:
        m.setattr(layout, "_flatten_order", lambda node, network: None)
        assert agree.agreement(spec, batch=2, modes=("eval",)).worst("forward") > 1e-3
    with monkeypatch.context() as m:
        m.setattr(agree.FixedDropout, "forward", lambda self, x: x)
        result = agree.agreement(spec, batch=2)
        assert result.modes["eval"].forward < TOLERANCE
        assert result.modes["train"].forward > 1e-3


def test_relative_error():
    assert agree.relative_error([1.0, -2.0], [1.0, -2.0]) == 0.0
    assert agree.relative_error([1.0, -2.0], [1.0, -4.0]) == pytest.approx(0.5)
    assert agree.relative_error([0.0], [0.0]) == 0.0
    assert agree.relative_error([1e-20], [0.0], floor=1e-10) == pytest.approx(1e-10)
    with pytest.raises(ValueError, match="shapes differ"):
        agree.relative_error([1.0], [1.0, 2.0])


def test_command_line(capsys):
    assert agree.main([str(ROOT / "specs" / "lenet5.txt"), "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "FAIL" not in out
