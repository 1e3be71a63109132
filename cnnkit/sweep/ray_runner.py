"""The trials of a sweep on Ray Tune: a local Ray on this machine's cores, or a cluster.

Each trial is a Tune trial that trains into its run directory in the sweep folder (an
absolute path, as are own data files, so every worker finds them as this machine does; on
a cluster the folder must be shared, e.g. over NFS, and cnnkit installed on every node).
The trial reports each epoch's metrics to Tune, so ASHAScheduler can stop it early.  Ray
is imported here only, and this module only for `cnnkit sweep --ray`.
"""

from __future__ import annotations

import logging
import math
import os

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from ..training.rundir import CSV_FIELDS
from .asha import GRACE_EPOCHS, REDUCTION
from .plan import METRICS, SweepPlan
from .results import DONE, FAILED, STOPPED, SweepProgress, read_rows
from .runner import ResultCallback, run_trial

FORWARDED_ENV = ("CNNKIT_DATA_DIR",)  # where this machine keeps downloaded datasets


def run_on_ray(plan: SweepPlan, progress: SweepProgress, address: str | None = None,
               cpus: int | None = None, cpus_per_trial: int = 1, gpus_per_trial: float = 0,
               on_result: ResultCallback | None = None) -> None:
    """Runs the unfinished trials on Ray: joins the cluster at ``address`` ("auto" or
    HOST:PORT), or starts a local Ray with ``cpus`` (default: all of this machine's)."""
    pending = progress.pending()
    if not pending:
        return
    env = {"CNNKIT_NUM_THREADS": str(cpus_per_trial)}
    env.update({name: os.environ[name] for name in FORWARDED_ENV if name in os.environ})
    ray.init(address=address, num_cpus=None if address else cpus, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"env_vars": env})
    try:
        trainable = tune.with_resources(_ray_trial, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        scheduler = (ASHAScheduler(time_attr="epoch", max_t=plan.epochs, grace_period=GRACE_EPOCHS,
                                   reduction_factor=REDUCTION) if plan.early_stop else None)
        tuner = tune.Tuner(
            trainable,
            param_space={"folder": str(plan.folder),
                         "trial": tune.grid_search([t.name for t in pending])},
            tune_config=tune.TuneConfig(metric=plan.metric, mode=METRICS[plan.metric],
                                        scheduler=scheduler),
            run_config=tune.RunConfig(name="tune", storage_path=str(plan.folder / "ray"),
                                      verbose=0, callbacks=[_Recorder(plan, progress, on_result)]))
        tuner.fit()
    finally:
        ray.shutdown()


def _ray_trial(config: dict) -> None:
    """One trial on a Ray worker.  A trial that fails reports its error as a last result
    (with the metric as NaN, which Tune requires and ASHA ignores) rather than raising, so
    the table gets cnnkit's one-line message instead of a worker traceback."""
    plan = SweepPlan.load(config["folder"])
    trial = plan.trial(config["trial"])
    epochs_done = 0

    def on_epoch(row: dict) -> None:
        nonlocal epochs_done
        epochs_done = row["epoch"]
        tune.report(row)

    for row in read_rows(plan, trial):  # a continued trial's epochs so far, for ASHA's rungs
        on_epoch(row)
    status, error = run_trial(plan, trial, on_epoch)
    if status == FAILED:
        tune.report({"epoch": epochs_done, plan.metric: math.nan, "cnnkit_error": error})


class _Recorder(tune.Callback):
    """In the driver: records each trial as it ends, from the metrics it reported."""

    def __init__(self, plan: SweepPlan, progress: SweepProgress, on_result: ResultCallback | None):
        self.plan, self.progress = plan, progress
        self.report = on_result or (lambda result: None)
        self.rows: dict[str, list[dict]] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "cnnkit_error" not in result:
            self.rows.setdefault(trial.config["trial"], []).append(result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        name = trial.config["trial"]
        error = (trial.last_result or {}).get("cnnkit_error")
        reported = self.rows.get(name, [])
        if error:
            status = FAILED
        else:  # a trial that ends before its last epoch was stopped by ASHA
            status = STOPPED if _last_epoch(reported) < self.plan.epochs else DONE
        self._finish(name, status, error, reported)

    def on_trial_error(self, iteration, trials, trial, **info):
        name = trial.config["trial"]
        self._finish(name, FAILED, f"the Ray trial failed; see {trial.local_path}",
                     self.rows.get(name, []))

    def _finish(self, name: str, status: str, error: str | None, reported: list[dict]) -> None:
        """The run directory's rows up to the last epoch Tune heard of (a stopped trial may
        finish one more before its worker ends), or the reported ones where the run
        directory is on another machine."""
        trial = self.plan.trial(name)
        if self.plan.trial_dir(trial).exists():
            rows = [r for r in read_rows(self.plan, trial) if r["epoch"] <= _last_epoch(reported)]
        else:
            rows = [{key: r.get(key) for key in CSV_FIELDS} for r in reported]
        self.report(self.progress.finish(trial, status, error, rows))


def _last_epoch(reported: list[dict]) -> int:
    return reported[-1]["epoch"] if reported else 0
