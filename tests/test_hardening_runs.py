"""Interrupted and damaged runs: Ctrl-C at any moment resumes bit for bit, a run killed
before its first checkpoint resumes, damaged run files are one clear error (exit 1), a full
disk keeps the last checkpoint intact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import cnnkit
import cnnkit.engine.model as model_module
from cnnkit.cli import app
from cnnkit.engine.optim import Adam
from cnnkit.training import rundir
from cnnkit.training.config import TrainConfig
from cnnkit.training.predict import load_run
from cnnkit.training.rundir import RunDirectory, RunError, load_arrays, save_arrays
from cnnkit.training.trainer import Trainer, TrainingError

# batch norm (running statistics move in forward), dropout (random masks) and Adam (two
# slots and a step count): every kind of state a step changes
SPEC = ("INPUT 28x28x1 -> CONV3-4 -> BN -> RELU -> POOL2 -> DROPOUT(0.3) -> CONV3-6(pad=0) "
        "-> RELU -> FLATTEN -> FC-10")
runner = CliRunner()


def config(**kw):
    base = dict(dataset="mnist-sample", epochs=2, batch=40, limit=200, val_split=0.2,
                device="cpu", seed=5, optimizer="adam")
    return TrainConfig(**{**base, **kw})


def train(path, resume=False, on_event=None, text=SPEC, **kw) -> RunDirectory:
    run = RunDirectory(path)
    network = run.read_network() if resume else cnnkit.parse(text)
    cfg = run.read_config() if resume else config(**kw)
    Trainer(network, cfg, run, on_event=on_event).train(resume=resume)
    return run


def final_state(run: RunDirectory) -> dict[str, np.ndarray]:
    """Every array of the finished run: its weights and the last checkpoint (model,
    optimizer slots, progress counts) but the wall-clock seconds."""
    arrays = {f"final/{k}": v for k, v in load_arrays(run.weights_final).items()}
    last = load_arrays(run.latest_checkpoint())
    arrays.update({k: v for k, v in last.items() if k != "progress_float"})
    return arrays


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not different, different


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and how many layer calls and parameter updates it made."""
    calls = Counter()
    with calls.counting():
        run = train(tmp_path_factory.mktemp("reference") / "run")
    return final_state(run), calls.count


class Counter:
    """Counts the engine's layer forward/backward calls and the optimizer's per-parameter
    updates, and sends this process a signal at call number ``at``: a moment inside a step
    (after batch norm moved its statistics, between two parameters' updates, in validation,
    ...), wherever the count falls."""

    def __init__(self, at: int | None = None, signum=signal.SIGINT):
        self.count, self.at, self.signum = 0, at, signum

    def tick(self) -> None:
        self.count += 1
        if self.count == self.at:
            os.kill(os.getpid(), self.signum)

    def wrap(self, function):
        def counted(*args, **kwargs):
            result = function(*args, **kwargs)
            self.tick()
            return result
        return counted

    def counting(self):
        counter = self
        make_layer, update = model_module.make_layer, Adam.update

        def counted_layer(*args, **kwargs):
            layer = make_layer(*args, **kwargs)
            layer.forward, layer.backward = counter.wrap(layer.forward), counter.wrap(layer.backward)
            return layer

        class Patch:
            def __enter__(self):
                model_module.make_layer = counted_layer
                Adam.update = counter.wrap(update)

            def __exit__(self, *exc):
                model_module.make_layer, Adam.update = make_layer, update

        return Patch()


def moments(total: int) -> list[int]:
    """Early and late calls, and a spread of random ones in between."""
    chosen = {1, 2, 3, 10, total // 2, total - 1}
    chosen.update(int(k) for k in np.random.default_rng(0).integers(1, total, size=12))
    return sorted(chosen)


def test_interrupt_at_any_moment_then_resume_equals_the_uninterrupted_run(tmp_path, reference):
    expected, total = reference
    assert total > 150  # the moments below land all over both epochs
    for k, at in enumerate(moments(total)):
        signum = signal.SIGTERM if k % 3 == 2 else signal.SIGINT
        path = tmp_path / f"cut-{at}"
        with pytest.raises(KeyboardInterrupt), Counter(at, signum).counting():
            train(path)
        run = RunDirectory(path)
        assert not run.weights_final.exists(), at
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        train(path, resume=True)
        assert_identical(final_state(run), expected)


def test_interrupted_augmented_runs_resume_bit_identical_with_or_without_prefetching(
        tmp_path, reference):
    """Augmentation draws by (seed, epoch, step) and batches made ahead in a thread are the
    batches made in time: wherever the signal lands, the resumed run is the same, and no
    batch thread is left behind."""
    augmented = dict(augment="flip,crop:2,cutout:6")
    calls = Counter()
    with calls.counting():
        expected = final_state(train(tmp_path / "reference", **augmented))
    plain, _ = reference
    assert any(not np.array_equal(expected[k], plain[k]) for k in plain)  # it augments
    for k, at in enumerate(moments(calls.count)[::3]):
        path = tmp_path / f"cut-{at}"
        with pytest.raises(KeyboardInterrupt), Counter(at).counting():
            train(path, prefetch=k % 3, **augmented)
        assert not [t for t in threading.enumerate() if t.name == "cnnkit-batches"]
        train(path, resume=True)
        assert_identical(final_state(RunDirectory(path)), expected)


def test_a_second_interrupt_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, reference):
    _, total = reference

    class Twice(Counter):
        def tick(self):
            super().tick()
            if self.count == self.at + 1:
                os.kill(os.getpid(), signal.SIGINT)

    path = tmp_path / "forced"
    with pytest.raises(KeyboardInterrupt), Twice(total // 2).counting():
        train(path)
    run = RunDirectory(path)
    kept = run.checkpoints_in_order()
    assert [p.name for p in kept] == ["epoch-001.npz"]  # mid-epoch 2: nothing newer written
    train(path, resume=True)
    assert_identical(final_state(run), reference[0])


def test_a_run_killed_before_its_first_checkpoint_resumes_from_its_initial_weights(
        tmp_path, reference):
    path = tmp_path / "early"
    train(path)
    run = RunDirectory(path)
    init = load_arrays(run.weights_init)
    # the state `kill -9` leaves before the first checkpoint: spec, config, initial
    # weights, and the temp file of a write it cut short
    for leftover in [*run.checkpoints.iterdir(), run.weights_final, run.metrics_jsonl,
                     run.metrics_csv]:
        leftover.unlink()
    (run.checkpoints / ".epoch-001.npz.k2j4x9.tmp").write_bytes(b"half a file")
    (run.path / ".weights_init.npz.abcd.tmp").write_bytes(b"")
    notices = []
    train(path, resume=True, on_event=lambda kind, data: notices.append(data.get("message")))
    assert any("starting it over" in str(n) for n in notices)
    assert_identical(final_state(run), reference[0])
    assert_identical(load_arrays(run.weights_init), init)
    assert not list(run.path.rglob("*.tmp"))
    # and without its initial weights (killed between config.json and weights_init.npz)
    for leftover in [*run.checkpoints.iterdir(), run.weights_final, run.weights_init]:
        leftover.unlink()
    result = runner.invoke(app, ["train", "--resume", str(path), "--output", "quiet"])
    assert result.exit_code == 0, result.output
    assert_identical(final_state(run), reference[0])


def test_cli_messages_of_a_run_that_never_started_point_somewhere_that_works(tmp_path):
    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    out = tmp_path / "empty-run"
    out.mkdir()
    (out / "spec.txt").write_text(SPEC)  # interrupted before config.json was written
    resumed = runner.invoke(app, ["train", "--resume", str(out)])
    assert resumed.exit_code == 1 and f"--out {out}" in resumed.stderr
    fresh = runner.invoke(app, ["train", str(spec), "--out", str(out), "--dataset",
                                "mnist-sample", "--epochs", "1", "--limit", "100",
                                "--output", "quiet"])
    assert fresh.exit_code == 0, fresh.output


def test_sigint_in_a_real_process_resumes_bit_identical(tmp_path, reference):
    """The CLI end to end: Ctrl-C lands wherever the process happens to be."""
    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    out = tmp_path / "sigint"
    command = ["train", str(spec), "--dataset", "mnist-sample", "--epochs", "2", "--batch",
               "40", "--limit", "200", "--seed", "5", "--val-split", "0.2", "--device", "cpu",
               "--out", str(out), "--output", "jsonl"]
    env = {**os.environ, "PYTHONPATH": str(Path(cnnkit.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "cnnkit", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if '"event": "memory"' in line and "measured" in line:  # two steps done
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # it finished before the signal arrived
        pytest.skip("the run finished before the signal")
    assert proc.returncode == 130, err
    assert "is saved" in err and "--resume" in err
    result = runner.invoke(app, ["train", "--resume", str(out), "--output", "quiet"])
    assert result.exit_code == 0, result.output
    assert_identical(final_state(RunDirectory(out)), reference[0])


# -- checkpoints -------------------------------------------------------------------------

def test_checkpoints_are_ordered_by_progress_not_by_name(tmp_path):
    run = RunDirectory(tmp_path)
    names = ["epoch-001.npz", "epoch-001-step-000027.npz", "epoch-002.npz",
             "epoch-010.npz", "epoch-002-step-000003.npz"]
    for name in names:
        save_arrays(run.checkpoints / name, {"x": np.zeros(1)})
    assert [p.name for p in run.checkpoints_in_order()] == [
        "epoch-001.npz", "epoch-001-step-000027.npz", "epoch-002.npz",
        "epoch-002-step-000003.npz", "epoch-010.npz"]
    assert run.latest_checkpoint().name == "epoch-010.npz"
    run.prune_checkpoints(2)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch-002-step-000003.npz",
                                                                 "epoch-010.npz"]


def test_resume_skips_a_damaged_latest_checkpoint_and_says_so(tmp_path):
    straight = train(tmp_path / "straight", epochs=3)
    path = tmp_path / "damaged"
    run = train(path, epochs=2)
    latest = run.latest_checkpoint()
    latest.write_bytes(latest.read_bytes()[:1000])  # cut short
    cfg = run.read_config()
    cfg.epochs = 3
    notices = []
    Trainer(run.read_network(), cfg, run, on_event=lambda kind, data: notices.append(
        data.get("message"))).train(resume=True)
    assert any("skipped the damaged epoch-002.npz" in str(n) and "epoch-001.npz" in str(n)
               for n in notices), notices
    assert_identical(final_state(run), final_state(straight))


@pytest.mark.parametrize("damage", ["no progress", "wrong shape", "progress past the epoch"])
def test_resume_skips_checkpoints_that_do_not_fit(tmp_path, damage):
    run = train(tmp_path / "run", epochs=1)
    good = load_arrays(run.latest_checkpoint())
    bad = dict(good)
    if damage == "no progress":
        del bad["progress"]
    elif damage == "wrong shape":
        key = next(k for k in bad if k.endswith("CONV3-4/W"))
        bad[key] = np.zeros((1, 2, 3))
    else:
        bad["progress"] = np.array([1, 999, 10, 10])
    save_arrays(run.checkpoint_path(1, 2), bad)
    notices = []
    train(run.path, resume=True, on_event=lambda kind, data: notices.append(data.get("message")))
    assert any("skipped the damaged epoch-001-step-000002.npz" in str(n) for n in notices)


# -- damaged run directories -------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return train(tmp_path_factory.mktemp("finished") / "run", epochs=1, standardize=True)


def _copy(run: RunDirectory, tmp_path) -> RunDirectory:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(run.path, target)
    return RunDirectory(target)


def _set_config(run, **changes):
    data = json.loads(run.config.read_text())
    run.config.write_text(json.dumps({**data, **changes}))


def _save_weights(run, change):
    arrays = load_arrays(run.weights_final)
    change(arrays)
    save_arrays(run.weights_final, arrays)


def _first_conv(arrays):
    return next(k for k in arrays if k.endswith("CONV3-4/W"))


DAMAGES = {
    "config not JSON": (lambda r: r.config.write_text("{epochs: 2"), "config.json"),
    "config not an object": (lambda r: r.config.write_text("[1, 2]"), "config.json"),
    "epochs a string": (lambda r: _set_config(r, epochs="x"), "epochs must be a whole number"),
    "negative batch": (lambda r: _set_config(r, batch=-5), "batch must be at least 1"),
    "float16": (lambda r: _set_config(r, dtype="float16"), "dtype must be float32 or float64"),
    "unknown optimizer": (lambda r: _set_config(r, optimizer="rmsprop"), "optimizer must be"),
    "unknown augmentation": (lambda r: _set_config(r, augment="spin:3"),
                             "unknown augmentation 'spin:3'"),
    "unknown resize": (lambda r: _set_config(r, resize="zoom"), "resize must be one of"),
    "classes not a list": (lambda r: r.classes.write_text('{"classes": "0123"}'),
                           "classes.json is damaged"),
    "classes repeated": (lambda r: r.classes.write_text('{"classes": ["a", "a"]}'),
                         "classes.json is damaged"),
    "classes too many": (lambda r: r.classes.write_text(json.dumps(
        {"classes": [str(i) for i in range(11)]})), "names 11 classes, but the network has 10"),
    "spec invalid": (lambda r: r.spec.write_text("INPUT 28x28x1 -> CONV3-4 -> ->"), "spec.txt"),
    "spec not UTF-8": (lambda r: r.spec.write_bytes(b"INPUT 28x28x1 \xff\xfe"), "not UTF-8"),
    "spec no longer fits": (lambda r: r.spec.write_text(SPEC.replace("CONV3-4", "CONV3-5")),
                            "fit"),
    "spec too big for memory": (lambda r: r.spec.write_text(SPEC.replace("FC-10", "FC-10000000000")),
                                "is free"),
    "normalization corrupt": (lambda r: r.normalization.write_text("{mean"), "normalization.json"),
    "normalization wrong length": (
        lambda r: r.normalization.write_text('{"mean": [0.1, 0.2], "std": [1, 1]}'),
        "normalization.json"),
    "weights truncated": (lambda r: r.weights_final.write_bytes(r.weights_final.read_bytes()[:500]),
                          "weights_final.npz"),
    "weights empty": (lambda r: r.weights_final.write_bytes(b""), "weights_final.npz is empty"),
    "weights not npz": (lambda r: r.weights_final.write_bytes(b"PK\x03\x04garbage"),
                        "weights_final.npz"),
    "weights wrong shape": (lambda r: _save_weights(
        r, lambda a: a.__setitem__(_first_conv(a), np.zeros((3, 3)))), "saved (3, 3)"),
    "weights extra key": (lambda r: _save_weights(r, lambda a: a.__setitem__("9:FC-3/W", np.zeros(3))),
                          "unexpected: 9:FC-3/W"),
    "weights complex": (lambda r: _save_weights(
        r, lambda a: a.__setitem__(_first_conv(a), a[_first_conv(a)] * 1j)), "complex"),
    "weights NaN": (lambda r: _save_weights(
        r, lambda a: a.__setitem__(_first_conv(a), a[_first_conv(a)] * np.nan)), "NaN"),
}


def _commands(run: RunDirectory, tmp_path) -> dict[str, list[str]]:
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(image)
    return {
        "evaluate": ["evaluate", str(run.path)],
        "predict": ["predict", str(run.path), str(image)],
        "filters": ["visualize", "filters", str(run.path), "--out", str(tmp_path / "f.png")],
        "activations": ["visualize", "activations", str(run.path), "--image", str(image),
                        "--out", str(tmp_path / "a.png")],
        "resume": ["train", "--resume", str(run.path), "--epochs", "2", "--output", "quiet"],
    }


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_run_files_are_one_clear_error(finished, tmp_path, damage):
    spoil, expected = DAMAGES[damage]
    run = _copy(finished, tmp_path)
    spoil(run)
    for name, command in _commands(run, tmp_path).items():
        if name == "resume" and damage.startswith(("weights", "normalization")):
            continue  # resuming reads checkpoints, and works the normalization out again
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (name, result.output, result.exception)
        assert "internal error" not in result.output and "Traceback" not in result.output
        assert result.stderr.startswith("error: "), (name, result.stderr)
        assert expected in " ".join(result.stderr.split()), (name, result.stderr)


def test_damaged_metrics_are_named_by_line(finished, tmp_path):
    run = _copy(finished, tmp_path)
    run.metrics_jsonl.write_text(run.metrics_jsonl.read_text() + "{not json\n")
    for command in (["visualize", "curves", str(run.path), "--out", str(tmp_path / "c.png")],
                    ["train", "--resume", str(run.path), "--epochs", "2", "--output", "quiet"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "metrics.jsonl, line 2, is damaged" in " ".join(result.stderr.split())


def test_load_run_api_raises_run_error_for_damaged_files(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run.path / "weights_final.npz").write_bytes(b"")
    with pytest.raises(RunError, match="is empty"):
        load_run(run.path)
    with pytest.raises(RunError, match="is empty"):
        load_arrays(run.weights_final)


def test_visualize_filters_checks_the_initial_weights_too(finished, tmp_path):
    run = _copy(finished, tmp_path)
    arrays = load_arrays(run.weights_init)
    arrays["extra"] = np.zeros(2)
    save_arrays(run.weights_init, arrays)
    result = runner.invoke(app, ["visualize", "filters", str(run.path), "--compare-init",
                                 "--out", str(tmp_path / "f.png")])
    assert result.exit_code == 1 and "init weights" in result.stderr


# -- writing fails -----------------------------------------------------------------------

def test_disk_full_mid_run_keeps_the_last_checkpoint_and_says_how_to_go_on(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "epoch-002" in path:  # the second checkpoint finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(rundir.os, "fsync", fsync)
    path = tmp_path / "full"
    with pytest.raises(TrainingError) as info:
        train(path, epochs=3)
    message = str(info.value)
    assert "No space left on device" in message and "epoch-002.npz" in message
    assert "the last checkpoint, epoch-001.npz, is intact" in message and "--resume" in message
    run = RunDirectory(path)
    assert [p.name for p in run.checkpoints.iterdir()] == ["epoch-001.npz"]  # no temp file
    load_arrays(run.checkpoints / "epoch-001.npz")


def test_an_unwritable_out_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    result = runner.invoke(app, ["train", str(spec), "--out", str(blocker / "run"), "--dataset",
                                 "mnist-sample", "--limit", "100", "--epochs", "1"])
    assert result.exit_code == 1, result.output
    assert "cannot write" in result.stderr and "choose another --out" in result.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A real, small tmpfs (root only); its size is set by the test with remount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_is_exit_1_with_the_last_checkpoint_intact(tmp_path, small_disk):
    probe = train(tmp_path / "probe", epochs=1)
    first = sum(f.stat().st_size for f in probe.path.rglob("*") if f.is_file()
                and f.name not in ("weights_final.npz",))
    checkpoint = probe.latest_checkpoint().stat().st_size
    # room for the first epoch's files and half of a second checkpoint
    size = (first + checkpoint // 2) // 4096 * 4096 + 8192
    subprocess.run(["mount", "-o", f"remount,size={size}", str(small_disk)], check=True)
    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    out = small_disk / "run"
    result = runner.invoke(app, ["train", str(spec), "--out", str(out), "--dataset",
                                 "mnist-sample", "--epochs", "3", "--batch", "40", "--limit",
                                 "200", "--seed", "5", "--output", "quiet"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "No space left on device" in message and "is intact" in message
    kept = RunDirectory(out).latest_checkpoint()
    assert kept is not None and kept.name in message
    load_arrays(kept)
    assert not list(out.rglob("*.tmp"))


def test_a_read_only_file_system_is_exit_1(tmp_path, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    result = runner.invoke(app, ["train", str(spec), "--out", str(small_disk / "run"),
                                 "--dataset", "mnist-sample", "--limit", "100", "--standardize"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "Read-only file system" in message and "choose another --out" in message


def test_checkpoint_zip_errors_are_run_errors(tmp_path):
    path = tmp_path / "x.npz"
    save_arrays(path, {"a": np.arange(1000.0)})
    raw = bytearray(path.read_bytes())
    raw[200:260] = b"\x00" * 60  # damage the stored array's bytes: a CRC error on reading
    path.write_bytes(bytes(raw))
    with pytest.raises(RunError):
        load_arrays(path)
    assert zipfile.is_zipfile(path)
