"""`cnnkit sweep`: the plan, the results table and files, failed and resumed trials, ASHA,
a trial equal to `cnnkit train` bit for bit, and Ray Tune (skipped without ray[tune])."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnnkit.api import load_run
from cnnkit.cli import app
from cnnkit.sweep.asha import Asha
from cnnkit.sweep.plan import Range, SweepPlan, Trial, expand_sweeps, make_plan, parse_values
from cnnkit.sweep.results import DONE, FAILED, STOPPED, SweepProgress
from cnnkit.sweep.runner import run_local
from cnnkit.training.rundir import RunDirectory, load_arrays

SPECS = {
    "conv.txt": "INPUT 28x28x1 -> CONV5-4(pad=0) -> RELU -> POOL2 -> FC-10 -> SOFTMAX",
    "wrong.txt": "INPUT 32x32x3 -> FC-10 -> SOFTMAX",  # not the data's shape: fails
    "fc.txt": "INPUT 28x28x1 -> FC-16 -> RELU -> FC-10 -> SOFTMAX",
}
OPTIONS = ["--dataset", "mnist-sample", "--epochs", "2", "--limit", "300", "--val-split",
           "0.2", "--seed", "3", "--device", "cpu"]
BASE = dict(dataset="mnist-sample", epochs=2, limit=300, val_split=0.2, seed=3, device="cpu")
runner = CliRunner()


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    for name, text in SPECS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def swept(spec_dir, tmp_path_factory):
    """6 trials, one after another: conv, wrong, fc x lr 0.01, 0.001 (wrong's 2 fail)."""
    folder = tmp_path_factory.mktemp("sweep") / "grid"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNKIT_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
        result = runner.invoke(app, ["sweep", *(str(spec_dir / n) for n in SPECS), "--lr",
                                     "0.01,0.001", "--batch", "50", *OPTIONS, "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder, result.output


def best_val_acc(run_dir: Path, epochs: int | None = None) -> float:
    return max(row["val_acc"] for row in RunDirectory(run_dir).read_metrics()[:epochs])


def test_table_ranks_trials_and_its_winner_is_the_best_trial(swept):
    folder, output = swept
    table = json.loads((folder / "results.json").read_text())["trials"]
    trained = [r for r in table if r["status"] == DONE]
    assert len(trained) == 4 and all(r["epochs"] == 2 for r in trained)
    by_run = {r["trial"]: best_val_acc(folder / r["trial"]) for r in trained}
    assert table[0]["trial"] == max(by_run, key=by_run.get)
    assert [r["best"] for r in trained] == sorted(by_run.values(), reverse=True)
    assert all(r["best"] == r["best_val_acc"] == by_run[r["trial"]] for r in trained)
    assert "6 trials, best val_acc first" in output and table[0]["trial"] in output


def test_results_files_hold_every_trial(swept, spec_dir):
    folder, _ = swept
    table = json.loads((folder / "results.json").read_text())
    assert table["metric"] == "val_acc"
    rows = list(csv.DictReader((folder / "results.csv").open()))
    assert [r["trial"] for r in rows] == [t["trial"] for t in table["trials"]]
    assert list(rows[0]) == ["rank", "trial", "spec", "lr", "batch", "best_val_acc", "epochs",
                             "seconds", "params", "macs", "status", "error"]
    first, json_first = rows[0], table["trials"][0]
    assert float(first["best_val_acc"]) == json_first["best_val_acc"]
    assert (int(first["params"]), int(first["macs"])) == (json_first["params"], json_first["macs"])
    conv = next(t for t in table["trials"] if t["spec"].endswith("conv.txt"))
    assert (conv["params"], conv["macs"]) == (5874, 63360)  # the calculator's figures
    assert {t["hyper"]["batch"] for t in table["trials"]} == {50}


def test_failed_trial_is_marked_and_the_others_still_run(swept):
    folder, output = swept
    table = json.loads((folder / "results.json").read_text())["trials"]
    failed = [r for r in table if r["status"] == FAILED]
    assert [r["spec"].endswith("wrong.txt") for r in failed] == [True, True]
    assert all("INPUT is 32x32x3 but mnist-sample images are 28x28x1" in r["error"]
               and "\n" not in r["error"] and r["epochs"] == 0 for r in failed)
    assert table[-2:] == failed  # ranked last, and the fc trials after them trained
    assert "failed: the spec's INPUT is 32x32x3" in output


def test_sequential_trial_equals_cnnkit_train_bit_for_bit(swept, spec_dir, tmp_path):
    folder, _ = swept
    trial = next(t for t in SweepPlan.load(folder).trials
                 if t.spec.endswith("conv.txt") and t.hyper["lr"] == 0.001)
    out = tmp_path / "trained"
    result = runner.invoke(app, ["train", str(spec_dir / "conv.txt"), "--lr", "0.001",
                                 "--batch", "50", *OPTIONS, "--output", "quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    swept_run, trained = RunDirectory(folder / trial.name), RunDirectory(out)
    assert swept_run.read_config() == trained.read_config()
    a, b = load_arrays(swept_run.weights_final), load_arrays(trained.weights_final)
    assert a.keys() == b.keys()
    assert all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def test_interrupted_sweep_resumes_where_it_stopped(swept, spec_dir, tmp_path):
    folder = tmp_path / "interrupted"
    plan = make_plan(folder, {"conv.txt": SPECS["conv.txt"]}, BASE,
                     {"lr": [0.01, 0.001], "batch": [50]})
    plan.save()

    def interrupt(trial, kind, data):  # Ctrl-C in the second trial's second epoch
        if trial == plan.trials[1] and kind == "step" and data["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_local(plan, SweepProgress(plan), on_event=interrupt)
    first, second = (plan.trial_dir(t) for t in plan.trials)
    finished = json.loads((folder / "results.json").read_text())["trials"]
    assert [t["trial"] for t in finished] == [plan.trials[0].name]
    assert not (second / "weights_final.npz").exists()
    kept = (first / "weights_final.npz").stat().st_mtime_ns

    result = runner.invoke(app, ["sweep", "--resume", str(folder)])
    assert result.exit_code == 0, result.output
    assert "2 trials" in result.output and "1 finished before" in result.output
    assert (first / "weights_final.npz").stat().st_mtime_ns == kept  # not trained again
    statuses = [t["status"] for t in json.loads((folder / "results.json").read_text())["trials"]]
    assert statuses == [DONE, DONE]
    # the resumed trial ends as the same trial trained without a break in the grid sweep
    same = next(t for t in SweepPlan.load(swept[0]).trials
                if t.spec.endswith("conv.txt") and t.hyper["lr"] == 0.001)
    a = load_arrays(second / "weights_final.npz")
    b = load_arrays(swept[0] / same.name / "weights_final.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_visualize_curves_overlays_the_trials_of_a_sweep_folder(swept):
    folder, _ = swept
    table = json.loads((folder / "results.json").read_text())["trials"]
    assert expand_sweeps([folder]) == [folder / r["trial"] for r in table if r["epochs"]]
    result = runner.invoke(app, ["visualize", "curves", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "viz" / "curves.png").stat().st_size > 0


def test_asha_keeps_the_better_half_at_each_rung():
    asha = Asha(epochs=8)  # rungs after 1, 2 and 4 epochs
    assert sorted(asha.rungs) == [1, 2, 4]
    assert not asha.should_stop("a", 1, 0.5)  # the first at a rung always goes on
    assert asha.should_stop("b", 1, 0.4)  # below the median of {0.5}
    assert not asha.should_stop("c", 1, 0.6)
    assert asha.should_stop("d", 1, 0.5) is False  # the median of {0.4, 0.5, 0.6}: kept
    assert not asha.should_stop("a", 3, 0.0)  # no rung at 3 epochs
    assert not asha.should_stop("b", 1, 0.0)  # a rung judges a trial once


def test_asha_without_ray_stops_a_bad_trial(tmp_path):
    plan = make_plan(tmp_path / "asha", {"conv.txt": SPECS["conv.txt"]}, BASE,
                     {"lr": [0.01, 1e-6], "batch": [50]}, early_stop="asha")
    plan.save()
    progress = SweepProgress(plan)
    run_local(plan, progress)
    good, bad = (progress.results[t.name] for t in plan.trials)
    assert (good.status, good.epochs) == (DONE, 2)
    assert (bad.status, bad.epochs) == (STOPPED, 1)
    stopped = plan.trial_dir(plan.trials[1])
    assert RunDirectory(stopped).latest_checkpoint().name == "epoch-001.npz"
    assert 0 <= load_run(stopped).evaluate().accuracy <= 1  # a run directory like any other


def test_process_pool_gives_the_same_table(spec_dir, tmp_path):
    result = runner.invoke(app, ["sweep", str(spec_dir / "conv.txt"), str(spec_dir / "fc.txt"),
                                 "--lr", "0.01", "--batch", "50", *OPTIONS, "--workers", "2",
                                 "--out", str(tmp_path / "pool")])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "pool" / "results.json").read_text())["trials"]
    assert [r["status"] for r in table] == [DONE, DONE]
    assert table[0]["best"] >= table[1]["best"]


def test_random_search_draws_from_lists_and_ranges(tmp_path):
    axes = {"lr": parse_values("lr", "1e-4:1e-2"), "batch": parse_values("batch", "32,64")}
    assert axes == {"lr": Range(1e-4, 1e-2), "batch": [32, 64]}
    plan = make_plan(tmp_path, SPECS, BASE, axes, samples=5, seed=1)
    assert plan == make_plan(tmp_path, SPECS, BASE, axes, samples=5, seed=1)  # seeded
    assert len(plan.trials) == 5
    assert all(1e-4 <= t.hyper["lr"] <= 1e-2 and t.hyper["batch"] in (32, 64) for t in plan.trials)
    with pytest.raises(ValueError, match="give --samples N"):
        make_plan(tmp_path, SPECS, BASE, axes)
    grid = make_plan(tmp_path, SPECS, BASE, {"optimizer": ["sgd", "adam"]})
    assert [t.hyper for t in grid.trials[:2]] == [  # the optimizers' own default lr
        {"lr": 0.05, "batch": 64, "optimizer": "sgd"}, {"lr": 0.001, "batch": 64, "optimizer": "adam"}]


@pytest.mark.parametrize("args, message", [
    (["--lr", "1e-4:1e-2"], "give --samples N"),
    (["--batch", "64,big"], "write values separated by commas"),
    (["--workers", "2", "--ray"], "--workers is for sweeps without Ray"),
    (["--gpus-per-trial", "1"], "need --ray"),
    (["--metric", "val_acc", "--val-split", "0"], "needs a validation split"),
])
def test_usage_errors_are_one_line(spec_dir, tmp_path, args, message):
    result = runner.invoke(app, ["sweep", str(spec_dir / "conv.txt"), *args,
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and message in result.output, result.output


def test_resume_takes_no_specs_and_a_sweep_folder_is_not_reused(swept, spec_dir):
    folder, _ = swept
    result = runner.invoke(app, ["sweep", str(spec_dir / "conv.txt"), "--resume", str(folder)])
    assert result.exit_code == 2 and "give no spec files" in result.output
    result = runner.invoke(app, ["sweep", str(spec_dir / "conv.txt"), "--out", str(folder)])
    assert result.exit_code == 2 and "already holds a sweep" in result.output


def test_sweep_without_ray_never_imports_ray(spec_dir, tmp_path):
    code = f"""
import sys
import cnnkit, cnnkit.cli, cnnkit.sweep.runner
from typer.testing import CliRunner
result = CliRunner().invoke(cnnkit.cli.app, ["sweep", {str(spec_dir / "fc.txt")!r}, "--epochs",
    "1", "--limit", "100", "--dataset", "mnist-sample", "--device", "cpu",
    "--out", {str(tmp_path / "s")!r}])
assert result.exit_code == 0, result.output
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- Ray Tune ------------------------------------------------------------------------------

def test_ray_local_asha_stops_the_bad_trial_and_ranks_the_rest(tmp_path):
    pytest.importorskip("ray.tune", reason="needs ray[tune] (pip install 'cnnkit[ray]')")
    from cnnkit.sweep.ray_runner import run_on_ray

    hyper = dict(batch=50, optimizer="adam")
    trials = [Trial(f"{i}-conv-lr{lr}", "conv.txt", {"lr": lr, **hyper})
              for i, lr in enumerate((0.01, 0.005, 0.003), 1)]
    # last, so that the good trials are at ASHA's first rung before it: a learning rate that
    # learns nothing in an epoch, and a trial that fails
    trials += [Trial("4-conv-lr1e-06", "conv.txt", {"lr": 1e-6, **hyper}),
               Trial("5-wrong", "wrong.txt", {"lr": 0.01, **hyper})]
    plan = SweepPlan((tmp_path / "ray").absolute(), SPECS, BASE, trials, early_stop="asha")
    plan.save()
    progress = SweepProgress(plan)
    run_on_ray(plan, progress, cpus=2)
    results = progress.results
    assert (results["4-conv-lr1e-06"].status, results["4-conv-lr1e-06"].epochs) == (STOPPED, 1)
    assert results["5-wrong"].status == FAILED and "INPUT is 32x32x3" in results["5-wrong"].error
    assert results["1-conv-lr0.01"].status == DONE
    table = json.loads((plan.folder / "results.json").read_text())["trials"]
    # a stopped trial's worker may finish one more epoch before Ray ends it
    by_run = {r["trial"]: best_val_acc(plan.folder / r["trial"], r["epochs"])
              for r in table if r["epochs"]}
    assert table[0]["trial"] == max(by_run, key=by_run.get)
