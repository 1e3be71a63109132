"""Training, checkpoints, resume, failure paths, evaluation and prediction."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import cnnkit
from cnnkit.cli import app
from cnnkit.engine.model import Model
from cnnkit.training import resources
from cnnkit.training.config import TrainConfig
from cnnkit.training.predict import load_run, predict_files
from cnnkit.training.rundir import RunDirectory, load_arrays, save_arrays
from cnnkit.training.trainer import Trainer, TrainingError

SPECS = sorted(Path("specs").glob("*.txt"))
TINY = "INPUT 28x28x1 -> CONV5-4(pad=0) -> RELU -> POOL2 -> DROPOUT(0.2) -> FC-10 -> SOFTMAX"
runner = CliRunner()


def config(**kw):
    base = dict(dataset="mnist-sample", epochs=2, batch=50, limit=300, val_split=0.2,
                device="cpu", seed=3)
    return TrainConfig(**{**base, **kw})


def train(tmp_path, name="run", text=TINY, resume=False, on_event=None, **kw):
    run = RunDirectory(tmp_path / name)
    Trainer(cnnkit.parse(text), config(**kw), run, on_event=on_event).train(resume=resume)
    return run


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_executor_parameters_equal_calculator_totals(path):
    network = cnnkit.load(path)
    summary = network.summary()
    trainable, state = Model(network).count_parameters()
    assert (trainable, state) == (summary.params, summary.state)


def test_run_directory_holds_everything(tmp_path):
    run = train(tmp_path)
    for f in (run.spec, run.config, run.weights_init, run.weights_final, run.metrics_csv,
              run.metrics_jsonl):
        assert f.exists(), f
    assert run.spec.read_text() == TINY
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 <= r["val_acc"] <= 1 for r in rows)
    assert run.metrics_csv.read_text().splitlines()[0].startswith("epoch,train_loss")
    final = load_arrays(run.weights_final)  # allow_pickle=False inside
    init = load_arrays(run.weights_init)
    assert final.keys() == init.keys()
    assert any(not np.array_equal(final[k], init[k]) for k in final)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch-001.npz",
                                                                 "epoch-002.npz"]


def test_same_seed_gives_bit_identical_training(tmp_path):
    a = load_arrays(train(tmp_path, "a").weights_final)
    b = load_arrays(train(tmp_path, "b").weights_final)
    c = load_arrays(train(tmp_path, "c", seed=4).weights_final)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_resume_after_an_epoch_equals_uninterrupted(tmp_path):
    straight = load_arrays(train(tmp_path, "straight", epochs=3).weights_final)
    train(tmp_path, "split", epochs=1)
    run = RunDirectory(tmp_path / "split")
    cfg = run.read_config()
    cfg.epochs = 3
    Trainer(run.read_network(), cfg, run).train(resume=True)
    resumed = load_arrays(run.weights_final)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3]


def test_ctrl_c_mid_epoch_saves_a_checkpoint_and_resume_is_identical(tmp_path):
    straight = load_arrays(train(tmp_path, "straight").weights_final)

    def interrupt(kind, data):
        if kind == "step" and data["epoch"] == 2 and data["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "cut", on_event=interrupt)
    run = RunDirectory(tmp_path / "cut")
    assert (run.checkpoints / "epoch-001-step-000002.npz").exists()
    assert not run.weights_final.exists()
    train(tmp_path, "cut", resume=True)
    resumed = load_arrays(run.weights_final)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)


def test_divergence_stops_with_a_learning_rate_hint_and_keeps_last_checkpoint(tmp_path):
    events = []

    def blow_up(kind, data):
        events.append(kind)
        if kind == "epoch":  # after a good first epoch, make the weights explode
            for layer in trainer_model:
                for array in layer.params.values():
                    array[...] = np.inf

    trainer_model = []
    original = Model.__init__

    def capture(self, *a, **kw):
        original(self, *a, **kw)
        trainer_model.extend(self.layers)

    Model.__init__ = capture
    try:
        with pytest.raises(TrainingError) as info:
            train(tmp_path, "nan", on_event=blow_up)
    finally:
        Model.__init__ = original
    message = str(info.value)
    assert "learning rate" in message and "--lr" in message
    assert "epoch-001.npz" in message
    kept = load_arrays(RunDirectory(tmp_path / "nan").checkpoints / "epoch-001.npz")
    assert all(np.isfinite(v).all() for k, v in kept.items() if k.startswith("model/"))


def test_huge_learning_rate_is_caught(tmp_path):
    with pytest.raises(TrainingError, match="learning rate"):
        train(tmp_path, text="INPUT 28x28x1 -> FC-64 -> RELU -> FC-10", optimizer="sgd",
              lr=1e12, epochs=1)


def test_input_shape_must_match_the_data(tmp_path):
    with pytest.raises(TrainingError) as info:
        train(tmp_path, text="INPUT 32x32x3 -> FC-10")
    assert "32x32x3" in str(info.value) and "28x28x1" in str(info.value)


def test_configuration_that_does_not_fit_is_refused_with_largest_batch(tmp_path, monkeypatch):
    monkeypatch.setattr("cnnkit.training.resources.available_bytes", lambda xp: 2_000_000)
    with pytest.raises(TrainingError) as info:
        train(tmp_path, batch=200)
    assert "the largest batch that fits is" in str(info.value)


def test_measured_peak_is_reported_beside_the_estimate(tmp_path):
    seen = []
    train(tmp_path, on_event=lambda kind, data: seen.append(data) if kind == "memory" else None,
          epochs=1)
    assert seen[0]["estimate_bytes"] > 0
    assert seen[-1]["measured_peak_bytes"] > 0


def test_peak_memory_measures_numpy_allocations():
    with resources.peak_memory(np) as measured:
        block = np.ones(1_000_000)
        del block
    assert measured["peak_bytes"] >= 8_000_000


def test_standardize_writes_normalization_and_predict_uses_it(tmp_path):
    run = train(tmp_path, standardize=True, epochs=1)
    mean, std = run.read_normalization()
    assert mean.shape == (1,) and 0 < mean[0] < 0.5 and std[0] > 0


def test_evaluate_and_predict(tmp_path):
    from PIL import Image

    from cnnkit.data import load_dataset

    run = train(tmp_path, epochs=2, limit=2000)
    result = runner.invoke(app, ["evaluate", str(run.path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["count"] == 1000 and np.array(data["confusion"]).sum() == 1000
    assert data["accuracy"] > 0.7 and len(data["per_class_accuracy"]) == 10
    table = runner.invoke(app, ["evaluate", str(run.path)]).stdout
    assert "confusion matrix" in table and "accuracy" in table
    rows = [line for line in table.splitlines() if "%" in line and "│" in line]
    assert rows and all(not line.split("│")[1].strip().startswith(("0 0", "1 1")) for line in rows)
    assert rows[0].split("│")[1].strip() == "0"  # a digit's class is named once

    test = load_dataset("mnist-sample", split="test")
    paths = []
    for i in range(5):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(test.images[i, :, :, 0]).resize((56, 56)).save(path)
        paths.append(path)
    results = predict_files(load_run(run.path), paths, top_k=3)
    assert all(len(r["top"]) == 3 for r in results)
    assert sum(r["top"][0]["class"] == label for r, label in zip(results, test.labels)) >= 3
    out = runner.invoke(app, ["predict", str(run.path), str(paths[0]), "-f", "json"])
    assert json.loads(out.stdout)[0]["top"][0]["probability"] > 0


def test_cli_train_jsonl_and_failure_exit_codes(tmp_path):
    spec = tmp_path / "tiny.txt"
    spec.write_text(TINY)
    out = tmp_path / "cli-run"
    result = runner.invoke(app, ["train", str(spec), "--dataset", "mnist-sample", "--epochs",
                                 "1", "--limit", "200", "--device", "cpu", "--out", str(out),
                                 "--output", "jsonl"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert "epoch" in events and events[-1] == "end"
    again = runner.invoke(app, ["train", str(spec), "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.stderr
    bad = runner.invoke(app, ["train", str(spec), "--dataset", "imagenet", "--out",
                              str(tmp_path / "x")])
    assert bad.exit_code == 1 and "unknown dataset" in bad.stderr
    assert runner.invoke(app, ["evaluate", str(tmp_path / "nothing")]).exit_code == 1
    png = tmp_path / "broken.png"
    png.write_bytes(b"not a png")
    broken = runner.invoke(app, ["predict", str(out), str(png)])
    assert broken.exit_code == 1 and "cannot read" in broken.stderr


def test_run_files_are_written_atomically_with_normal_permissions(tmp_path):
    from cnnkit.training.rundir import write_atomic

    target = tmp_path / "deep" / "file.json"
    write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]  # no temp file left


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = tmp_path / "tiny.txt"
    spec.write_text(TINY)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnkit", "train", str(spec), "--dataset", "mnist-sample",
         "--epochs", "50", "--batch", "10", "--device", "cpu", "--out", str(out),
         "--output", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training is under way
        if '"event": "epoch"' in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    assert any(p.name.startswith("epoch-") for p in (out / "checkpoints").iterdir())
    assert os.path.exists(out / "metrics.csv")


def test_accuracy_is_right_for_networks_ending_in_gap(tmp_path):
    """SqueezeNet-style heads end in GAP, whose logits are 1x1xK volumes, not vectors: the
    same network with a FLATTEN after the GAP must report the same accuracies."""
    head = "INPUT 28x28x1 -> CONV3-8 -> RELU -> POOL2 -> CONV1-10 -> GAP"
    volume = train(tmp_path, "volume", text=head, epochs=1, limit=500).read_metrics()
    flat = train(tmp_path, "flat", text=head + " -> FLATTEN", epochs=1, limit=500).read_metrics()
    for key in ("train_loss", "train_acc", "val_acc"):
        assert volume[0][key] == pytest.approx(flat[0][key])


def test_init_std_is_validated_and_saved_with_the_run(tmp_path):
    with pytest.raises(ValueError, match="init std"):
        config(init_std=0.0)
    run = train(tmp_path, epochs=1, init_std=0.01)
    assert run.read_config().init_std == 0.01
    w = load_arrays(run.weights_init)["1:CONV5-4/W"]
    assert abs(float(w.std()) - 0.01) < 0.003


def test_a_lone_last_image_joins_the_step_before(tmp_path):
    """240 training images in batches of 239 would leave a batch of one image, on which the
    per-neuron BN cannot train (the engine refuses it, as PyTorch does): it joins the first."""
    seen = []
    text = "INPUT 28x28x1 -> FC-8 -> BN -> RELU -> FC-10"
    train(tmp_path, text=text, batch=239, epochs=1, limit=240, val_split=0.0,
          on_event=lambda kind, data: seen.append(data) if kind == "step" else None)
    assert [(s["step"], s["steps"]) for s in seen] == [(1, 1)]
    model = Model(cnnkit.parse(text))
    with pytest.raises(ValueError, match="more than one value per channel"):
        model.forward(np.zeros((1, 28, 28, 1), np.float32), train=True)
    with pytest.raises(TrainingError, match="use --batch 2 or more"):
        train(tmp_path, "one", text=text, batch=1, epochs=1)


def test_a_validation_split_that_leaves_nothing_is_a_training_error(tmp_path):
    with pytest.raises(TrainingError, match="validation split 0.1: .* leaves one part empty"):
        train(tmp_path, limit=4, val_split=0.1)


def test_saving_weights_holds_no_copy_of_the_model(tmp_path):
    """A checkpoint streams the live arrays into the file: at most one array's worth of
    buffer (NumPy writes in pieces of up to 16 MiB), not copies of the whole model."""
    from cnnkit.engine import Adam

    model = Model(cnnkit.parse("INPUT 16x16x4 -> FC-512 -> FC-512 -> FC-512 -> FC-512"))
    optimizer = Adam(model.parameters())
    arrays = {**model.state_dict(copy=False), **optimizer.state_dict(copy=False)}
    total = sum(array.nbytes for array in arrays.values())
    with resources.peak_memory(np) as measured:
        save_arrays(tmp_path / "checkpoint.npz", arrays)
    assert measured["peak_bytes"] < 0.5 * total
    saved = load_arrays(tmp_path / "checkpoint.npz")
    assert all(np.array_equal(saved[key], value) for key, value in arrays.items())
