"""What the export tests share: the networks, weights that exercise every array, and the
engine's output to compare against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import cnnkit
from benchmarks.common import randomize
from cnnkit.engine.model import Model

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}

# specs/ at their own input size (small) and at a smaller one the spec permits (big;
# GoogLeNet's final AVGPOOL7 needs its 224x224 input)
SMALL_SPECS = ["lenet5", "simpleconvnet", "keras_cifar10", "fashion_lenet", "small_vgg"]
REDUCED_SPECS = {
    "alexnet": "67x67x3", "zfnet": "64x64x3", "vgg11": "32x32x3", "vgg13": "32x32x3",
    "vgg16": "32x32x3", "vgg19": "32x32x3", "resnet18": "64x64x3", "resnet34": "64x64x3",
    "resnet50": "64x64x3", "googlenet": None, "squeezenet1_0": "64x64x3",
}

# one small network per layer kind and option
CASES = {
    "grouped_dilated": "INPUT 12x12x4 -> CONV3-8(dilation=2) -> RELU -> CONV3-8(groups=2) "
                       "-> CONV3-8(groups=8) -> CONV3x5-6(dilation=2, stride=2, round=floor) "
                       "-> GAP -> FC-3",
    "same_padding": "INPUT 11x10x2 -> CONV2-6(pad=same) -> RELU -> CONV4-6(pad=same) "
                    "-> CONV3-8(stride=2, pad=same) -> CONV4x2-5(stride=2x1, pad=same) -> FC-4",
    "max_pool_ceil": "INPUT 7x8x3 -> MAXPOOL2(round=ceil) -> MAXPOOL3(stride=2, pad=1, "
                     "round=ceil) -> CONV1-2",
    "avg_pool_ceil": "INPUT 6x6x2 -> AVGPOOL3(stride=2, pad=1, round=ceil) -> CONV1-3 -> FC-3",
    # padding wider than half the window: no torch pooling pads so, nor ceil_mode with it
    "avg_pool_ceil_wide_pad": "INPUT 8x8x3 -> AVGPOOL5(stride=2, pad=3, round=ceil) "
                              "-> AVGPOOL4(stride=3, pad=2, round=ceil) -> CONV1-2",
    "strided_floor_pools": "INPUT 14x14x3 -> CONV3-6(stride=2, pad=0, round=floor) "
                           "-> MAXPOOL3(stride=2, pad=1, round=ceil) -> LRELU(0.1) "
                           "-> AVGPOOL3(stride=1, pad=1) -> TANH -> AVGPOOL2(stride=1) "
                           "-> SIGMOID -> FC-5",
    "lrn_odd_and_even": "INPUT 5x5x7 -> CONV3-9 -> LRN(5) -> LRN(3, alpha=0.01, beta=0.6, k=1) "
                        "-> LRN(4) -> LRN(2, alpha=0.5, k=1) -> CONV1-3",
    "lrn_of_a_vector": "INPUT 3x4x5 -> FC-12 -> LRN(4) -> FC-3",
    "bn_spatial_and_flat": "INPUT 6x5x3 -> CONV3-4 -> BN -> RELU -> FLATTEN -> BN "
                           "-> DROPOUT(0.3) -> FC-7 -> BN -> FC-5 -> SOFTMAX",
    "res_projection": "INPUT 9x9x3 -> CONV3-8 -> BN -> RELU -> RES[ CONV3-8 -> BN ] -> RELU "
                      "-> RES[ CONV3-16(stride=2, round=floor, bias=false) -> BN "
                      "| CONV1-16(stride=2, round=floor, bias=false) -> BN ] -> GAP -> FC-5",
    "cat_branches": "INPUT 8x8x4 -> CAT[ CONV1-4 -> RELU | CONV3-6 -> CONV3-3 "
                    "| MAXPOOL3(stride=1, pad=1) -> CONV1-2 | ID ] -> DROPOUT(0.5) -> FC-6",
    "cat_of_flattened": "INPUT 6x5x3 -> CONV3-4 -> FLATTEN -> CAT[ FC-7 | ID | BN ] -> FC-5",
    "flatten_into_res": "INPUT 3x4x5 -> FLATTEN -> RES[ FC-60 ] -> FC-4",
    "flatten_last": "INPUT 3x4x5 -> CONV3-6 -> FLATTEN",
    "softmax_of_maps": "INPUT 4x4x3 -> CONV1-5 -> SOFTMAX -> CONV1-2 -> SOFTMAX",
    "gap_last": "INPUT 6x6x3 -> CONV3-4 -> ID -> GAP",
}


def spec_network(name: str) -> cnnkit.Network:
    text = (ROOT / "specs" / f"{name}.txt").read_text()
    return cnnkit.parse(text, filename=f"{name}.txt", input_shape=REDUCED_SPECS.get(name))


def engine(network, dtype: str, seed: int = 0) -> Model:
    """A model whose biases, BN parameters and running statistics are not their defaults,
    so that a mix-up between them shows."""
    model = Model(network, dtype=dtype, seed=seed)
    randomize(model, seed + 1)
    return model


def images(network, batch: int, dtype: str, seed: int = 2) -> np.ndarray:
    shape = network.input_shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, shape.h, shape.w, shape.c)).astype(dtype)


def nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def relative_error(theirs, ours) -> float:
    """max|theirs - ours| / max|ours|, ``theirs`` NCHW (or N, D), ``ours`` the engine's."""
    theirs = np.asarray(theirs, np.float64)
    if theirs.ndim == 4:
        theirs = theirs.transpose(0, 2, 3, 1)
    ours = np.asarray(ours, np.float64)
    assert theirs.shape == ours.shape
    return float(np.abs(theirs - ours).max() / max(np.abs(ours).max(), 1e-30))
