"""Training in ranks (``cnnkit train --launcher mpi``): processes that each train on a block
of every batch give what one process gives on the whole batch.  The MPI tests start real
ranks with ``mpiexec -n 2`` (the ``mpi`` extra: mpi4py and MPICH's wheel); they are skipped
where those are missing."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import cnnkit
from cnnkit.cli import app
from cnnkit.engine import Model
from cnnkit.training import ranks

MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                        f"{os.environ.get('PATH', '')}")
needs_mpi = pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                               reason="needs mpi4py and mpiexec (pip install 'cnnkit[mpi]')")
# spatial and flat BN (synchronized over the ranks), dropout (the whole batch's mask)
SPEC = ("INPUT 28x28x1 -> CONV3-4 -> BN -> RELU -> POOL2 -> DROPOUT(0.3) -> FC-16 -> BN -> RELU"
        " -> FC-10\n")
# 45 images, 4 held out: steps of 8, 8, 8, 8 and 9 (no lone image), blocks of 4 and 4-5
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
COMMON = ("--dataset", "mnist-sample", "--limit", "45", "--batch", "8", "--epochs", "2",
          "--dtype", "float64", "--seed", "1", "--output", "jsonl")


def train_command(*arguments: str, ranks: int = 1) -> list[str]:
    command = [sys.executable, "-m", "cnnkit", "train", *arguments]
    return [MPIEXEC, "-n", str(ranks), *command, "--launcher", "mpi"] if ranks > 1 else command


def cnnkit_train(folder: Path, out: str, *options: str, ranks: int = 1, spec: str = SPEC):
    (folder / "net.txt").write_text(spec)
    command = train_command("net.txt", *COMMON, "--out", out, *options, ranks=ranks)
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300,
                          env=ENV)


def events(result) -> list[str]:
    return [json.loads(line)["event"] for line in result.stdout.splitlines()]


def metrics(folder: Path) -> list[list[str]]:
    return [line.split(",") for line in (folder / "metrics.csv").read_text().splitlines()]


@needs_mpi
@pytest.mark.parametrize("options", [("--optimizer", "momentum", "--lr", "0.05"),
                                     ("--optimizer", "adam", "--augment", "flip,crop:2")])
def test_two_ranks_train_what_one_process_trains(tmp_path, options):
    one = cnnkit_train(tmp_path, "one", *options)
    two = cnnkit_train(tmp_path, "two", *options, ranks=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a, b = (np.load(tmp_path / out / "weights_final.npz") for out in ("one", "two"))
    assert a.files == b.files
    for key in a.files:  # to rounding: each rank sums its block, then the ranks add up
        # (1e-8: the biases before a BN, whose true gradient is 0, are Adam's steps on
        # rounding noise, ~1e-9)
        np.testing.assert_allclose(b[key], a[key], rtol=1e-7,
                                   atol=1e-8 * max(1.0, np.abs(a[key]).max()), err_msg=key)
    rows_one, rows_two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    header = rows_one[0]
    for row_one, row_two in zip(rows_one[1:], rows_two[1:], strict=True):
        for name, x, y in zip(header, row_one, row_two, strict=True):
            if name in ("train_loss", "val_loss"):
                assert float(y) == pytest.approx(float(x), rel=1e-9), name
            elif name in ("epoch", "train_acc", "val_acc", "lr"):
                assert y == x, name
    # rank 0 alone writes the run and reports: the same files, the same events once
    files = {p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")}
    assert files == {p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")}
    assert events(two) == events(one)


@needs_mpi
def test_a_step_needs_an_image_per_rank_and_a_failing_rank_ends_the_others(tmp_path):
    result = cnnkit_train(tmp_path, "run", "--batch", "1", ranks=2,
                          spec="INPUT 28x28x1 -> CONV3-4 -> RELU -> POOL2 -> FC-10")
    assert result.returncode != 0
    assert "2 ranks share each step's images, but the batch has 1: use --batch 2" in " ".join(
        result.stderr.split())
    assert not (tmp_path / "run" / "config.json").exists()


@needs_mpi
def test_ranks_stop_together_on_ctrl_c_and_resume(tmp_path):
    """mpiexec passes Ctrl-C to every rank; they stop at the same step boundary, rank 0
    saves a checkpoint and says so once, and two ranks resume the run to the weights one
    process trains."""
    (tmp_path / "net.txt").write_text(SPEC)
    # momentum: Adam would turn the rounding noise of the biases before a BN into steps
    sgd = ["--limit", "400", "--optimizer", "momentum", "--lr", "0.05"]
    long_run = [*sgd, "--epochs", "20"]  # far from done when interrupted
    command = train_command("net.txt", *COMMON, *long_run, "--out", "two", ranks=2)
    ranks_run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=ENV)
    for line in ranks_run.stdout:
        if json.loads(line)["event"] == "epoch":
            ranks_run.send_signal(signal.SIGINT)
            break
    _, stderr = ranks_run.communicate(timeout=120)
    assert ranks_run.returncode == 130, stderr
    assert stderr.count("interrupted: two/checkpoints/") == 1
    assert list((tmp_path / "two" / "checkpoints").glob("*.npz"))
    resumed = subprocess.run(train_command("--resume", "two", "--epochs", "2", "--output",
                                           "quiet", ranks=2),
                             cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    one = cnnkit_train(tmp_path, "one", *sgd, "--epochs", "2")
    assert one.returncode == 0, one.stderr
    a, b = (np.load(tmp_path / out / "weights_final.npz") for out in ("one", "two"))
    for key in a.files:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-9, atol=1e-12, err_msg=key)


API_SCRIPT = """
import sys
import cnnkit

def on_epoch(row):
    if sys.argv[1] == "fail" and row["epoch"] == 1:
        raise RuntimeError("the callback failed")

run = cnnkit.train(cnnkit.parse("INPUT 28x28x1 -> CONV3-4 -> BN -> RELU -> POOL2 -> FC-10"),
                   sys.argv[2], launcher="mpi", on_epoch=on_epoch, dataset="mnist-sample",
                   limit=40, batch=8, epochs=2, val_split=0.0)
print(run.path.name, len(run.metrics))
"""


@needs_mpi
def test_the_python_api_trains_in_ranks_and_a_failing_rank_ends_them(tmp_path):
    """``cnnkit.train(..., launcher="mpi")``: each rank gets the run back once rank 0 wrote
    it; ``on_epoch`` runs on rank 0 only, and when it raises the other rank, which would
    wait for it in the next step, is ended (the test's timeout would catch a hang)."""
    (tmp_path / "script.py").write_text(API_SCRIPT)
    command = [MPIEXEC, "-n", "2", sys.executable, "script.py"]
    done = subprocess.run([*command, "run", "ok"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok") == 2 and done.stdout.count("2") == 2  # lines may mix
    failed = subprocess.run([*command, "fail", "failing"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=ENV)
    assert failed.returncode != 0
    assert "the callback failed" in failed.stderr


@needs_mpi
def test_a_spec_on_stdin_reaches_every_rank(tmp_path):
    command = train_command("-", *COMMON, "--out", "run", "--output", "quiet", ranks=2)
    result = subprocess.run(command, cwd=tmp_path, input=SPEC, capture_output=True,
                            text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "weights_final.npz").exists()


def test_ranks_are_refused_where_they_cannot_work(tmp_path, monkeypatch):
    (tmp_path / "net.txt").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "net.txt", "--launcher", "mpi", "--device", "gpu"])
    assert result.exit_code == 2
    assert "--launcher mpi trains on the CPU" in " ".join(result.output.split())
    # started by mpiexec among others, but told nothing: each would train the whole run
    result = runner.invoke(app, ["train", "net.txt"], env={"PMI_SIZE": "2"})
    assert result.exit_code == 2
    assert "one of 2 that an MPI launcher started; add --launcher mpi" in " ".join(
        result.output.split())
    assert not (tmp_path / "runs").exists()
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if it were not installed
    with pytest.raises(ranks.RanksError, match=r"pip install 'cnnkit\[mpi\]'"):
        ranks.connect("mpi")


@pytest.mark.parametrize("command, extra", [("train", "mpi"), ("sweep", "ray")])
def test_the_help_names_the_install(command, extra):
    """(Rich would take a bare [mpi] for markup and print nothing.)"""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert f"pip install 'cnnkit[{extra}]'" in result.output


def test_the_gradients_bucket_holds_every_layers_gradient():
    """Ranks sum one flat array a step: every layer must write its gradients into it (a
    layer that replaced its ``grads`` arrays would leave them out of the sum)."""
    network = cnnkit.parse("INPUT 16x16x3 -> CONV3-16 -> BN -> RELU -> POOL2 -> CONV3-16 -> "
                           "RELU -> POOL2 -> DROPOUT(0.5) -> FC-8 -> BN -> FC-4")
    x = np.random.default_rng(0).standard_normal((6, 16, 16, 3))
    dy = np.random.default_rng(1).standard_normal((6, 4))
    plain, bucketed = (Model(network, dtype="float64", seed=3) for _ in range(2))
    alone = ranks.connect()
    alone.block(len(x))
    bucket = bucketed.train_in_ranks(alone)
    for model in (plain, bucketed):
        model.reseed(1, 0, 0)
        model.forward(x, train=True)
        model.backward(dy, input_grad=False)
    expected = np.concatenate([grad.ravel() for _, _, grad in plain.parameters()])
    np.testing.assert_array_equal(bucket, expected)


def test_ranks_on_one_machine_share_its_free_memory(monkeypatch):
    from cnnkit.training import resources

    monkeypatch.setattr(resources, "available_bytes", lambda xp: 12_000_000)
    network = cnnkit.parse("INPUT 28x28x1 -> CONV3-8 -> RELU -> FC-10")

    def fit(sharing):
        return resources.memory_fit(network, 64, dtype="float32", optimizer="adam", xp=np,
                                    sharing=sharing)
    assert 6_000_000 < fit(1).needed_bytes <= 12_000_000  # fits one process, not two
    assert fit(1).fits and not fit(2).fits and fit(2).free_bytes == 6_000_000
    assert 0 < fit(2).largest_batch < 64


def test_one_rank_takes_the_whole_batch():
    alone = ranks.connect()
    assert (alone.size, alone.rank) == (1, 0)
    assert alone.block(9) == slice(0, 9) and alone.total == 9
    summed = np.arange(3.0)
    assert alone.sum(summed) is summed and alone.share("x") == "x" and not alone.any(False)
