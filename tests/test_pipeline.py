"""The input pipeline: batches made ahead in a thread, in order, bounded, stopped with the
epoch whatever ends it, and the same results as without the thread; the share of time
spent waiting for data reaches the metrics and the epoch line."""

from __future__ import annotations

import csv
import json
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import cnnkit
from cnnkit.cli import app
from cnnkit.training.config import TrainConfig
from cnnkit.training.pipeline import Prefetcher
from cnnkit.training.rundir import RunDirectory
from cnnkit.training.trainer import Trainer

runner = CliRunner()


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cnnkit-batches"]


@pytest.mark.parametrize("ahead", [0, 1, 3])
def test_batches_come_in_step_order(ahead):
    with Prefetcher(lambda step: step * 10, range(4, 9), ahead) as batches:
        assert [batches.next_batch() for _ in range(5)] == [40, 50, 60, 70, 80]
    assert not workers()


def test_the_worker_runs_at_most_ahead_plus_one_batches_ahead():
    made = []
    with Prefetcher(lambda step: made.append(step) or step, range(100), ahead=2) as batches:
        batches.next_batch()
        time.sleep(0.3)  # plenty of time to run ahead, if it could
        assert len(made) <= 1 + 2 + 1  # the one taken, two queued, one waiting for room
    assert not workers()


def test_an_error_while_making_a_batch_is_raised_in_the_training_thread():
    def make(step):
        if step == 2:
            raise MemoryError("no room for batch 2")
        return step

    with pytest.raises(MemoryError, match="batch 2"), Prefetcher(make, range(5), 1) as batches:
        assert [batches.next_batch() for _ in range(2)] == [0, 1]
        batches.next_batch()
    assert not workers()


def test_leaving_early_stops_a_worker_that_waits_for_room():
    with Prefetcher(lambda step: step, range(10**6), ahead=1) as batches:
        batches.next_batch()
    assert not workers()


def test_waiting_is_timed():
    with Prefetcher(lambda step: time.sleep(0.05) or step, range(3), ahead=0) as batches:
        for _ in range(3):
            batches.next_batch()
    assert 0.14 < batches.waited < 1.0


SPEC = "INPUT 28x28x1 -> CONV3-4 -> BN -> RELU -> POOL2 -> DROPOUT(0.2) -> FC-10"


def test_training_is_identical_with_and_without_the_thread(tmp_path):
    weights = []
    for prefetch in (0, 1, 2):
        run = RunDirectory(tmp_path / f"prefetch-{prefetch}")
        config = TrainConfig(dataset="mnist-sample", epochs=2, batch=32, limit=160,
                             val_split=0.2, seed=1, augment="flip,crop:2", prefetch=prefetch,
                             device="cpu")
        Trainer(cnnkit.parse(SPEC), config, run).train()
        weights.append(dict(np.load(run.weights_final)))
        assert not workers()
    for other in weights[1:]:
        assert all(np.array_equal(weights[0][k], other[k]) for k in weights[0])


def test_the_wait_for_data_is_in_the_metrics_and_the_epoch_line(tmp_path):
    spec = tmp_path / "net.txt"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(spec), "--dataset", "mnist-sample", "--epochs",
                                 "2", "--limit", "100", "--augment", "translate:2", "--out",
                                 str(out), "--output", "rich"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("epoch"))
    assert header.split()[-1] == "data"
    second = next(line for line in result.output.splitlines() if line.split()[:1] == ["2"])
    assert second.split()[-1].endswith("%")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= row["data_wait"] < 1 for row in rows)
    with open(out / "metrics.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [float(row["data_wait"]) for row in table] == [row["data_wait"] for row in rows]
