"""--augment: the syntax, what each transform does to the pixels, the seeding, and that a
run records it and trains with it; `cnnkit visualize augment` draws it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import cnnkit
from cnnkit.cli import app
from cnnkit.data.augment import Augmentation, parse_augment
from cnnkit.training.config import TrainConfig
from cnnkit.training.rundir import RunDirectory
from cnnkit.training.trainer import Trainer

runner = CliRunner()


def ramp(n=1, h=4, w=4, c=1) -> np.ndarray:
    """Images whose pixels are all different and non-zero, so every move shows."""
    return (np.arange(n * h * w * c) % 250 + 1).astype(np.uint8).reshape(n, h, w, c)


# -- syntax --------------------------------------------------------------------------------

def test_the_syntax_parses_to_transforms_and_prints_back_canonically():
    assert parse_augment("crop:4,flip") == Augmentation(flip=True, crop=4)
    assert str(parse_augment(" Cutout:8 , flip,translate:2 ")) == "flip,translate:2,cutout:8"
    assert parse_augment("") == Augmentation() and not parse_augment(None)
    assert parse_augment(str(parse_augment("flip,crop:4,translate:1,cutout:3"))) == \
        Augmentation(True, 4, 1, 3)


@pytest.mark.parametrize("text, message", [
    ("rotate:10", "unknown augmentation 'rotate:10'"),
    ("crop", "'crop' needs a size"),
    ("crop:0", "'crop' needs a size"),
    ("crop:-2", "'crop' needs a size"),
    ("cutout:x", "'cutout' needs a size"),
    ("flip:2", "'flip' takes no size"),
    ("flip,flip", "given twice"),
])
def test_bad_augmentations_are_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        parse_augment(text)
    with pytest.raises(ValueError, match=message):
        TrainConfig(augment=text)


def test_the_cli_refuses_a_bad_augment_with_one_line(tmp_path):
    spec = tmp_path / "net.txt"
    spec.write_text("INPUT 28x28x1 -> FC-10")
    result = runner.invoke(app, ["train", str(spec), "--dataset", "mnist-sample",
                                 "--augment", "spin:3", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "unknown augmentation 'spin:3'" in result.output
    assert "Traceback" not in result.output


# -- what each transform does --------------------------------------------------------------

def test_flip_mirrors_about_half_of_the_images_exactly():
    images = ramp(n=200)
    out = Augmentation(flip=True).apply(images, (0, 0, 0))
    mirrored = (out == images[:, :, ::-1]).all(axis=(1, 2, 3))
    assert ((out == images).all(axis=(1, 2, 3)) | mirrored).all()
    assert 70 < mirrored.sum() < 130


def test_crop_shifts_with_black_borders_and_translate_repeats_the_edges():
    images = ramp(n=300, h=6, w=6)
    for augmentation, edge in ((Augmentation(crop=2), False), (Augmentation(translate=2), True)):
        out = augmentation.apply(images, (3, 1, 4))
        shifts = set()
        for image, moved in zip(images[..., 0], out[..., 0]):
            found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                     if np.array_equal(moved, shifted(image, dy, dx, edge))]
            assert found, "every output is the input moved by at most 2 pixels"
            shifts.add(found[0])
        assert len(shifts) == 25  # all (dy, dx) in [-2, 2]^2 occur


def shifted(image: np.ndarray, dy: int, dx: int, edge: bool) -> np.ndarray:
    """The reference, pixel by pixel: output (i, j) is input (i - dy, j - dx)."""
    h, w = image.shape
    out = np.zeros_like(image)
    for i in range(h):
        for j in range(w):
            y, x = i - dy, j - dx
            if edge:
                out[i, j] = image[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]
            elif 0 <= y < h and 0 <= x < w:
                out[i, j] = image[y, x]
    return out


def test_cutout_blackens_one_square_of_the_given_size_or_its_part_inside():
    images = ramp(n=500, h=10, w=10, c=3)
    out = Augmentation(cutout=4).apply(images, (0, 2, 7))
    black = (out == 0).all(axis=3)
    assert ((out == images) | (out == 0)).all()
    for mask in black:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert mask.sum() == len(rows) * len(cols)  # one rectangle
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
    assert (black.sum(axis=(1, 2)) == 16).mean() > 0.4  # whole squares away from the border


def test_augmenting_keeps_shape_and_dtype_and_leaves_the_input_alone():
    images = ramp(n=8, h=5, w=7, c=3)
    before = images.copy()
    out = Augmentation(flip=True, crop=2, translate=1, cutout=3).apply(images, (1, 2, 3))
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(images, before)


def test_the_draws_depend_on_the_key_only():
    images = ramp(n=64, h=8, w=8)
    every = Augmentation(flip=True, crop=2, cutout=3)
    a = every.apply(images, (0, 1, 2))
    np.testing.assert_array_equal(a, every.apply(images.copy(), (0, 1, 2)))
    for other in ((0, 1, 3), (0, 2, 2), (1, 1, 2)):
        assert not np.array_equal(a, every.apply(images, other)), other


def test_a_block_of_rows_gets_the_draws_of_its_rows_in_the_whole_batch():
    """(As a rank augments its block of a step: the images one process would make.)"""
    images = ramp(n=11, h=8, w=8, c=3)
    every = Augmentation(flip=True, crop=2, translate=1, cutout=3)
    whole = every.apply(images, (4, 0, 7))
    for rows in (slice(0, 5), slice(5, 11), slice(3, 4)):
        np.testing.assert_array_equal(every.apply(images[rows], (4, 0, 7), rows, 11),
                                      whole[rows])


# -- in training ---------------------------------------------------------------------------

SPEC = "INPUT 28x28x1 -> CONV3-4 -> RELU -> POOL2 -> FC-10"


def train(path, **kw) -> RunDirectory:
    base = dict(dataset="mnist-sample", epochs=1, batch=50, limit=200, val_split=0,
                device="cpu", seed=3)
    run = RunDirectory(path)
    Trainer(cnnkit.parse(SPEC), TrainConfig(**{**base, **kw}), run).train()
    return run


def test_a_run_records_its_augmentation_and_the_same_seed_repeats_it(tmp_path):
    a = train(tmp_path / "a", augment="crop:2,flip")
    assert json.loads(a.config.read_text())["augment"] == "flip,crop:2"
    assert a.read_config().augmentation == Augmentation(flip=True, crop=2)
    b = train(tmp_path / "b", augment="flip,crop:2")
    plain = train(tmp_path / "plain")
    weights = [np.load(run.weights_final) for run in (a, b, plain)]
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0].files)
    assert not all(np.array_equal(weights[0][k], weights[2][k]) for k in weights[0].files)


def test_visualize_augment_of_a_run_and_of_a_spec(tmp_path):
    run = train(tmp_path / "run", augment="translate:2,cutout:6")
    result = runner.invoke(app, ["visualize", "augment", str(run.path), "--count", "3",
                                 "--variants", "4"])
    assert result.exit_code == 0, result.output
    picture = Image.open(run.path / "viz" / "augment.png")
    cell = 28 * 2 + 3  # 28-pixel images upscaled twice, 3-pixel gaps
    title = 13 + 2 * 4
    assert picture.height == 3 * cell + 3 + title  # 3 rows
    assert picture.width >= 5 * cell + 3  # of 5 cells (or wider, for the title)

    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    out = tmp_path / "aug.png"
    result = runner.invoke(app, ["visualize", "augment", str(spec), "--dataset", "mnist-sample",
                                 "--augment", "flip", "-o", str(out)])
    assert result.exit_code == 0 and out.exists(), result.output
    missing = runner.invoke(app, ["visualize", "augment", str(spec)])
    assert missing.exit_code == 2 and "give --dataset and --augment" in missing.output
