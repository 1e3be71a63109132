"""The trials of a sweep run on this machine: one after another in this process, each
trained exactly as `cnnkit train` would train it, or in a pool of processes, each on one
thread (``CNNKIT_NUM_THREADS=1``) so that the trials do not fight over the cores.

A trial is a normal run directory; an unfinished one (the sweep was interrupted) resumes
from its checkpoint through the trainer's own resume, bit for bit.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing.managers import BaseManager

from .asha import Asha
from .plan import SweepPlan, Trial
from .results import DONE, FAILED, STOPPED, SweepProgress, TrialResult, read_rows

ResultCallback = Callable[[TrialResult], None]
TrialEventHandler = Callable[[Trial, str, dict], None]


class TrialStopped(Exception):
    """Raised from the trainer's "epoch" event to end a trial that early stopping gives up.

    The trainer emits that event once the epoch's checkpoint and metrics are written, so the
    run directory is left as that of a run stopped after the epoch (`cnnkit train --resume`
    would continue it)."""


def run_trial(plan: SweepPlan, trial: Trial, on_epoch: Callable[[dict], None] | None = None,
              on_event: TrialEventHandler | None = None) -> tuple[str, str | None]:
    """Trains (or resumes) one trial: (status, the one-line error of a failed trial).  Any
    failure is the trial's own: the sweep goes on with the next."""
    from ..training.rundir import RunDirectory
    from ..training.trainer import Trainer

    run = RunDirectory(plan.trial_dir(trial))

    def forward(kind: str, data: dict) -> None:
        if on_event is not None:
            on_event(trial, kind, data)
        if kind == "epoch" and on_epoch is not None:
            on_epoch(data)

    try:
        Trainer(plan.network(trial), plan.config(trial), run, on_event=forward).train(
            resume=run.config.exists())
    except TrialStopped:
        return STOPPED, None
    except Exception as error:  # noqa: BLE001 - a failed trial must not end the sweep
        return FAILED, one_line(error)
    return DONE, None


def one_line(error: Exception) -> str:
    """The error's message on one line; errors cnnkit does not raise itself name their type."""
    from ..data import DataError
    from ..training.rundir import RunError
    from ..training.trainer import TrainingError

    message = " ".join(str(error).split())
    if isinstance(error, (DataError, RunError, TrainingError)) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def early_stopper(plan: SweepPlan, trial: Trial, asha) -> Callable[[dict], None] | None:
    """The ``on_epoch`` of a trial under ASHA (``asha`` an Asha or its manager's proxy)."""
    if asha is None:
        return None

    def on_epoch(row: dict) -> None:
        if asha.should_stop(trial.name, row["epoch"], plan.score(row[plan.metric])):
            raise TrialStopped

    return on_epoch


def replay_scores(plan: SweepPlan, asha):
    """``asha`` told the scores of the epochs the trial directories hold already, so that a
    continued sweep's rungs are those of the interrupted one."""
    for trial in plan.trials:
        for row in read_rows(plan, trial):
            asha.should_stop(trial.name, row["epoch"], plan.score(row[plan.metric]))
    return asha


def run_local(plan: SweepPlan, progress: SweepProgress, workers: int = 1,
              on_result: ResultCallback | None = None,
              on_event: TrialEventHandler | None = None) -> None:
    """Runs the trials ``progress`` has not finished: in this process when ``workers`` is
    1 (``on_event`` gets every trainer event), else in a pool of ``workers`` processes."""
    report = on_result or (lambda result: None)
    if workers > 1:
        _run_pool(plan, progress, workers, report)
        return
    asha = replay_scores(plan, Asha(plan.epochs)) if plan.early_stop else None
    for trial in progress.pending():
        status, error = run_trial(plan, trial, early_stopper(plan, trial, asha), on_event)
        report(progress.finish(trial, status, error))


class _AshaServer(BaseManager):
    """Holds the one Asha all processes of a pool ask."""


_AshaServer.register("Asha", Asha)


def _run_pool(plan: SweepPlan, progress: SweepProgress, workers: int,
              report: ResultCallback) -> None:
    # fresh interpreters: the engine reads CNNKIT_NUM_THREADS when it is first imported
    context = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        asha = None
        if plan.early_stop:
            server = stack.enter_context(_AshaServer(ctx=context))
            asha = replay_scores(plan, server.Asha(plan.epochs))
        pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context,
                                                       initializer=_one_thread))
        futures = {pool.submit(_pool_trial, str(plan.folder), trial.name, asha): trial
                   for trial in progress.pending()}
        for future in as_completed(futures):
            report(progress.finish(futures[future], *future.result()))


def _one_thread() -> None:
    os.environ["CNNKIT_NUM_THREADS"] = "1"


def _pool_trial(folder: str, name: str, asha) -> tuple[str, str | None]:
    plan = SweepPlan.load(folder)
    trial = plan.trial(name)
    return run_trial(plan, trial, early_stopper(plan, trial, asha))
