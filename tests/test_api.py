"""The Python training API of the README: build, train with a callback per epoch,
evaluate, predict, load the saved run; and `import cnnkit` stays free of NumPy."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit.data import load_dataset
from cnnkit.training.rundir import RunError

LENET = Path(__file__).resolve().parent.parent / "specs" / "lenet5.txt"


def test_train_evaluate_predict_and_load_a_run(tmp_path):
    epochs = []
    run = cnnkit.train(cnnkit.load(LENET), tmp_path / "run", dataset="mnist-sample", epochs=2,
                       limit=600, device="cpu", on_epoch=epochs.append)
    assert [row["epoch"] for row in epochs] == [1, 2]
    assert run.metrics == epochs and 0 <= epochs[-1]["val_acc"] <= 1
    result = run.evaluate()
    assert result.count == 1000 and result.accuracy > 0.3  # far above chance after 2 epochs
    digits = load_dataset("mnist-sample", split="test")
    probabilities = run.predict(digits.images[:5])
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1)
    again = cnnkit.load_run(tmp_path / "run")
    assert np.allclose(again.predict(digits.images[:5]), probabilities)
    before, after = again.weights("init"), again.weights()
    assert before.keys() == after.keys()
    assert not np.allclose(before["1:CONV5-6/W"], after["1:CONV5-6/W"])  # it learned
    assert repr(again) == f"<Run {tmp_path / 'run'}: 28x28x1 -> 10, 2 epochs trained>"


def test_resume_continues_a_run_as_if_it_had_never_stopped(tmp_path):
    """``cnnkit.resume`` is ``cnnkit train --resume``: one epoch, then resumed to two, gives
    the weights of two epochs in one go; a run is never trained over."""
    net, options = cnnkit.load(LENET), dict(dataset="mnist-sample", limit=300, device="cpu")
    straight = cnnkit.train(net, tmp_path / "straight", epochs=2, **options)
    cnnkit.train(net, tmp_path / "resumed", epochs=1, **options)
    epochs = []
    resumed = cnnkit.resume(tmp_path / "resumed", epochs=2, on_epoch=epochs.append)
    assert [row["epoch"] for row in epochs] == [2] and len(resumed.metrics) == 2
    for name, array in straight.weights().items():
        assert np.array_equal(resumed.weights()[name], array), name
    with pytest.raises(RunError, match="already holds a run; resume it"):
        cnnkit.train(net, tmp_path / "resumed", epochs=1, **options)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="holds no started run"):
        cnnkit.resume(tmp_path / "empty")


def test_import_cnnkit_stays_light():
    code = "import sys, cnnkit; cnnkit.parse('INPUT 8x8x1 -> FC-2'); print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
