"""FC -> CONV conversion and sliding evaluation (CS231n, seed 003): the converted run gives
the original's scores at the trained size, and slid over a larger image a map of them,
one per window, in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import cnnkit
from cnnkit.cli import app
from cnnkit.engine.model import Model
from cnnkit.training.config import TrainConfig
from cnnkit.training.convert import convert_network, fc_to_conv_spec
from cnnkit.training.predict import load_run, score_map
from cnnkit.training.rundir import RunDirectory, RunError, save_arrays, write_atomic

runner = CliRunner()
# 18 -> 16 -> 8 -> 6 -> 3: the FCs look at a 3x3x8 volume, the input shrinks by 4
SPEC = """# a small net for sliding
INPUT 18x18x1
-> CONV3-4(pad=0) -> RELU -> POOL2
-> CONV3-8(pad=0) -> RELU -> POOL2
-> FLATTEN -> FC-10 -> RELU -> DROPOUT(0.5)
-> FC-3(bias=false) -> SOFTMAX
"""
CLASSES = ["circle", "square", "cross"]


def make_run(path: Path, spec: str = SPEC) -> RunDirectory:
    network = cnnkit.parse(spec, filename="net.txt")
    run = RunDirectory(path)
    write_atomic(run.spec, spec.encode())
    write_atomic(run.config, TrainConfig(dataset="mnist-sample", dtype="float64").to_json().encode())
    save_arrays(run.weights_final, Model(network, dtype="float64", seed=3).state_dict())
    run.write_classes(CLASSES)
    return run


def noise_image(path: Path, height: int, width: int) -> Path:
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width), np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_fc_layers_become_the_convolutions_they_equal():
    text = fc_to_conv_spec(cnnkit.parse(SPEC))
    assert "-> ID -> CONV3x3-10(pad=0) -> RELU -> DROPOUT(0.5)" in text
    assert "-> CONV1x1-3(pad=0, bias=false) -> SOFTMAX" in text
    assert text.startswith("# a small net for sliding")


def test_blocks_are_converted_where_they_are_defined():
    spec = "head = FC-6 -> RELU\nINPUT 6x6x2 -> CONV3-4 -> POOL2 -> head -> FC-2"
    assert fc_to_conv_spec(cnnkit.parse(spec)).startswith("head = CONV3x3-6(pad=0) -> RELU")


def test_the_converted_scores_equal_the_original_exactly():
    """Image by image: a batch's split over threads may group the FC's rows differently."""
    for dtype in ("float64", "float32"):
        network = cnnkit.parse(SPEC)
        original = Model(network, dtype=dtype, seed=5)
        converted_network, weights = convert_network(network, original.state_dict())
        converted = Model(converted_network, dtype=dtype)
        converted.load_state_dict(weights)
        images = np.random.default_rng(1).standard_normal((4, 18, 18, 1))
        for x in images:
            np.testing.assert_array_equal(converted.predict_proba(x[None]),
                                          original.predict_proba(x[None]))


def test_cs231n_map_size_and_crops(tmp_path):
    """A net trained at 18x18 that shrinks by 4 slid over 38x38: the FC-turned-CONV3x3 reads
    an 8x8 volume, (8 - 3)/1 + 1 = 6, a 6x6 map (CS231n: 224 over 384 gives 6x6); each
    position is the original's scores of the 18x18 crop 4 pixels further on."""
    run = make_run(tmp_path / "run")
    converted = tmp_path / "run2"
    result = runner.invoke(app, ["convert", str(run.path), "--fc-to-conv", "--out", str(converted)])
    assert result.exit_code == 0, result.output
    assert json.loads((converted / "classes.json").read_text())["classes"] == CLASSES
    trained, original = load_run(converted), load_run(run.path)
    scores = score_map(trained, noise_image(tmp_path / "big.png", 38, 38))
    assert scores.size == (6, 6) and scores.stride == (4, 4) and scores.window == (18, 18)
    x = original.prepare(scores.pixels[None])
    for i, j in [(0, 0), (2, 5), (5, 5)]:
        crop = x[:, 4 * i:4 * i + 18, 4 * j:4 * j + 18]
        np.testing.assert_allclose(scores.probabilities[i, j],
                                   original.model.predict_proba(crop)[0], rtol=1e-12)


def test_predict_slide_prints_the_map_and_visualize_draws_it(tmp_path):
    run = make_run(tmp_path / "run")
    runner.invoke(app, ["convert", str(run.path), "--fc-to-conv", "--out", str(tmp_path / "r2")])
    big = noise_image(tmp_path / "big.png", 26, 30)  # (26-18)/4+1 = 3 by (30-18)/4+1 = 4
    result = runner.invoke(app, ["predict", str(tmp_path / "r2"), str(big), "--slide", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert "score map 3x4 (18x18 windows, every 4x4 pixels)" in result.output
    assert result.output.count("): ") == 12
    result = runner.invoke(app, ["predict", str(tmp_path / "r2"), str(big), "--slide",
                                 "--format", "json"])
    assert json.loads(result.output)[0]["map"] == [3, 4]
    out = tmp_path / "scores.png"
    result = runner.invoke(app, ["visualize", "scores", str(tmp_path / "r2"), str(big),
                                 "-o", str(out), "--max-classes", "2"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).width > 30


def test_slide_needs_a_converted_run_and_a_large_enough_image(tmp_path):
    run = make_run(tmp_path / "run")
    big = noise_image(tmp_path / "big.png", 26, 30)
    result = runner.invoke(app, ["predict", str(run.path), str(big), "--slide"])
    assert result.exit_code == 1 and "--fc-to-conv" in result.output
    runner.invoke(app, ["convert", str(run.path), "--fc-to-conv", "--out", str(tmp_path / "r2")])
    small = noise_image(tmp_path / "small.png", 10, 30)
    result = runner.invoke(app, ["predict", str(tmp_path / "r2"), str(small), "--slide"])
    assert result.exit_code == 1 and "smaller than the network's input" in result.output


def test_convert_refuses_an_existing_folder_and_layers_it_cannot_keep(tmp_path):
    run = make_run(tmp_path / "run")
    result = runner.invoke(app, ["convert", str(run.path), "--fc-to-conv", "--out", str(run.path)])
    assert result.exit_code == 1 and "exists" in result.output
    with pytest.raises(RunError, match="flattened volume"):
        fc_to_conv_spec(cnnkit.parse("INPUT 4x4x2 -> FLATTEN -> BN -> FC-2"))
