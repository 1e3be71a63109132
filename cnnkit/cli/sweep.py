"""`cnnkit sweep`: train every combination of specs and hyper-parameters (or random draws
of them) and compare the trials in one table."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import typer
from rich.markup import escape

from ..sweep.plan import EARLY_STOPPING, METRICS, SWEEP_FILE
from ..training.config import SCHEDULES
from .common import (
    EXIT_USAGE,
    Device,
    DownloadBar,
    app,
    choices,
    console,
    errors,
    fail,
    read_spec,
    reported_errors,
)
from .train import _dataset_name, _interrupt

Metric = choices("Metric", METRICS)
EarlyStop = choices("EarlyStop", EARLY_STOPPING)
Schedule = choices("Schedule", SCHEDULES)
RANGE_HELP = "or, with --samples, a range LOW:HIGH drawn from log-uniformly"


@app.command()
def sweep(
    specs: list[str] = typer.Argument(None, help="Spec files to compare (none with --resume)."),
    lr: str = typer.Option(None, help=f"Learning rates separated by commas, e.g. 0.01,0.003, "
                           f"{RANGE_HELP} (default: the optimizer's)."),
    batch: str = typer.Option(None, help="Batch sizes separated by commas, e.g. 64,128 "
                              "(default: 64)."),
    optimizer: str = typer.Option(None, help="Update rules separated by commas, e.g. "
                                  "adam,momentum (default: adam)."),
    weight_decay: str = typer.Option(None, help=f"L2 penalties separated by commas, {RANGE_HELP} "
                                     "(default: 0)."),
    samples: int = typer.Option(None, min=1, help="Random search: N trials, each of a random "
                                "spec and random values, instead of every combination."),
    epochs: int = typer.Option(8, min=1, help="Passes over the training set per trial."),
    dataset: str = typer.Option("mnist", help="As for `cnnkit train`: a dataset's name, an "
                                "image folder or an .npz file."),
    limit: int = typer.Option(None, min=1, help="Train on the first N images only."),
    val_split: float = typer.Option(0.1, help="Fraction held out for validation."),
    lr_schedule: Schedule = typer.Option("constant", help="Learning-rate schedule."),
    seed: int = typer.Option(0, help="Seed of every trial's training (and of --samples)."),
    device: Device = typer.Option("auto", help="cpu, gpu, or auto (GPU if CuPy sees one)."),
    standardize: bool = typer.Option(False, help="Standardize each channel."),
    augment: str = typer.Option(None, help="Augmentation, as for `cnnkit train`."),
    data_dir: Path = typer.Option(None, help="Folder holding the dataset files."),
    metric: Metric = typer.Option("val_acc", help="What ranks the trials: its best epoch."),
    early_stop: EarlyStop = typer.Option(None, help="asha: stop the trials that fall behind "
                                         "the others after 1, 2, 4, ... epochs (with or "
                                         "without --ray)."),
    out: Path = typer.Option(None, help="Sweep folder (default: sweeps/sweep-TIMESTAMP)."),
    resume: Path = typer.Option(None, help="Continue the sweep in this folder: finished "
                                "trials are kept, unfinished ones resume from their checkpoints."),
    workers: int = typer.Option(1, min=1, help="Without --ray: trials trained at once, each "
                                "in its own process on one thread."),
    use_ray: bool = typer.Option(False, "--ray", help="Run the trials on a local Ray with "
                                 "this machine's cores (pip install 'cnnkit\\[ray]')."),
    ray_address: str = typer.Option(None, help="Join the Ray cluster at auto or HOST:PORT "
                                    "(implies --ray)."),
    cpus_per_trial: int = typer.Option(1, min=1, help="With --ray: CPU cores per trial."),
    gpus_per_trial: float = typer.Option(0, min=0, help="With --ray: GPUs per trial (with "
                                         "--device gpu or auto)."),
) -> None:
    """Train many specs and hyper-parameters and compare them: each trial is a run directory
    in the sweep folder, the table (results.json, results.csv) ranks them by --metric."""
    from ..sweep.plan import SweepPlan
    from ..sweep.results import FAILED, SweepProgress, results_table

    use_ray = use_ray or ray_address is not None
    if use_ray and workers > 1:
        raise fail("--workers is for sweeps without Ray; Ray runs as many trials as it has "
                   "cores (--cpus-per-trial)", EXIT_USAGE)
    if not use_ray and (gpus_per_trial or cpus_per_trial > 1):
        raise fail("--gpus-per-trial and --cpus-per-trial need --ray", EXIT_USAGE)
    run_on_ray = _ray_runner() if use_ray else None
    if resume is not None:
        if specs:
            raise fail("--resume continues the sweep as planned: give no spec files",
                       EXIT_USAGE)
        try:
            plan = SweepPlan.load(resume)
        except ValueError as error:
            raise fail(str(error)) from None
    else:
        base = dict(dataset=_dataset_name(dataset), epochs=epochs, val_split=val_split,
                    seed=seed, device=device.value, limit=limit, lr_schedule=lr_schedule.value,
                    standardize=standardize, augment=augment or "",
                    data_dir=str(data_dir.absolute()) if data_dir else None)
        options = dict(lr=lr, batch=batch, optimizer=optimizer, weight_decay=weight_decay)
        plan = _new_plan(specs, out, base, options, samples, metric.value,
                         early_stop and early_stop.value)
    progress = SweepProgress(plan)
    console.print(f"sweep: {len(plan.trials)} trials in [bold]{escape(str(plan.folder))}[/]"
                  + (f", {len(plan.trials) - len(progress.pending())} finished before"
                     if resume else ""))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` checkpoints the running trial too
    try:
        if run_on_ray:
            run_on_ray(plan, progress, address=ray_address, cpus=_cores(),
                       cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                       on_result=_print_result)
        else:
            from ..sweep.runner import run_local

            with DownloadBar() as downloads:
                run_local(plan, progress, workers, on_result=_print_result,
                          on_event=lambda trial, kind, data: _show_event(trial, kind, data,
                                                                         downloads))
    except ConnectionError as error:  # ray.init: no cluster at --ray-address
        raise fail(f"cannot join Ray at {ray_address}: {error}") from None
    except KeyboardInterrupt:
        errors.print(f"interrupted: the finished trials are kept; continue with `cnnkit sweep "
                     f"--resume {plan.folder}`", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    table = progress.table()
    console.print(results_table(table, plan))
    console.print(f"results in {escape(str(plan.folder))}/results.json and results.csv; "
                  f"curves: `cnnkit visualize curves {escape(str(plan.folder))}`")
    if table and all(r.status == FAILED for r in table):
        raise typer.Exit(1)


def _new_plan(specs, out, base, options, samples, metric, early_stop):
    from ..sweep.plan import make_plan, parse_values

    if not specs:
        raise fail("give the spec files to compare, or --resume SWEEP_DIR", EXIT_USAGE)
    folder = out or Path("sweeps") / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if (folder / SWEEP_FILE).exists():
        raise fail(f"{folder} already holds a sweep; continue it with --resume {folder} or "
                   "choose another --out", EXIT_USAGE)
    texts = {}
    with reported_errors():
        for path in specs:
            texts[path] = _checked_spec(path)
    try:
        axes = {name: parse_values(name, text) for name, text in options.items()
                if text is not None}
        plan = make_plan(folder, texts, base, axes, samples, metric, early_stop, base["seed"])
    except ValueError as error:
        raise fail(str(error), EXIT_USAGE) from None
    plan.save()
    return plan


def _checked_spec(path: str) -> str:
    """The spec's text, parsed once here so that a mistake stops the sweep before it starts."""
    from ..graph.build import parse

    text, name = read_spec(path)
    parse(text, filename=name)
    return text


def _ray_runner():
    """``run_on_ray``, or a one-line error when Ray Tune is not installed."""
    try:
        from ..sweep.ray_runner import run_on_ray
    except ImportError as error:
        raise fail(f"--ray needs Ray Tune ({error}): pip install 'cnnkit[ray]'") from None
    return run_on_ray


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _print_result(result) -> None:
    if result.error:
        console.print(f"{escape(result.trial)}: failed: {escape(result.error)}")
        return
    value = "-" if result.best is None else f"{result.best:.4g}"
    console.print(f"{escape(result.trial)}: {result.status}, best {value} after "
                  f"{result.epochs} epochs ({result.seconds:.1f}s)")


def _show_event(trial, kind: str, data: dict, downloads: DownloadBar) -> None:
    """A line per epoch of the running trial, and the dataset's download."""
    if kind == "download":
        downloads(data["file"], data["bytes"], data["total"])
    elif kind == "epoch":
        val = "" if data["val_acc"] is None else f", val acc {data['val_acc']:.2%}"
        console.print(f"  {escape(trial.name)} epoch {data['epoch']}: train loss "
                      f"{data['train_loss']:.4f}{val} ({data['seconds']:.1f}s)", style="dim")
