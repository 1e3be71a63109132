"""Training curves: loss and accuracy per epoch, training (solid) and validation (dashed),
one colour per run, several runs overlaid.  Read from each run's metrics.jsonl, which the
trainer rewrites after every epoch, so an unfinished run can be plotted too."""

from __future__ import annotations

from pathlib import Path

from . import VizError

SIZE = (10.0, 4.0)  # inches at 100 dpi: 1000 x 400 pixels
DPI = 100


def read_runs(paths) -> list[tuple[str, list[dict]]]:
    """(label, metrics rows) per run directory (a sweep folder stands for its trials);
    labels are the directory names, made unique with their parents when two runs share a name."""
    from ..sweep.plan import expand_sweeps
    from ..training.rundir import RunDirectory

    runs = []
    for path in expand_sweeps(paths):
        run = RunDirectory(path)
        if not run.path.is_dir():
            raise VizError(f"{path} is not a run directory (make one with `cnnkit train`)")
        rows = run.read_metrics()  # a RunError names a damaged line
        if not rows:
            raise VizError(f"{path} has no metrics.jsonl with a finished epoch yet")
        runs.append((run.path, rows))
    names = [p.name for p, _ in runs]
    labels = [str(Path(p.parent.name) / p.name) if names.count(p.name) > 1 else p.name
              for p, _ in runs]
    return [(label, rows) for label, (_, rows) in zip(labels, runs)]


def _series(rows, key, percent=False):
    points = [(r["epoch"], r.get(key)) for r in rows if r.get(key) is not None]
    return [e for e, _ in points], [v * 100 if percent else v for _, v in points]


def curves_figure(runs: list[tuple[str, list[dict]]], title: str | None = None):
    """A matplotlib Figure (1000 x 400 px): loss on the left, accuracy (%) on the right."""
    from matplotlib.ticker import MaxNLocator

    from .output import new_figure

    figure = new_figure(*SIZE, dpi=DPI)
    figure.set_layout_engine("constrained")
    loss_axes, acc_axes = figure.subplots(1, 2)
    for i, (label, rows) in enumerate(runs):
        colour = f"C{i % 10}"
        for key, axes, percent in (("loss", loss_axes, False), ("acc", acc_axes, True)):
            for split, style, marker in (("train", "-", "o"), ("val", "--", "s")):
                x, y = _series(rows, f"{split}_{key}", percent)
                if x:
                    axes.plot(x, y, linestyle=style, marker=marker, markersize=4, color=colour,
                              label=f"{label} {'train' if split == 'train' else 'validation'}")
    for axes, name in ((loss_axes, "loss"), (acc_axes, "accuracy (%)")):
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    acc_axes.legend(fontsize="small", loc="best")
    figure.suptitle(title or ("training curves: solid = training, dashed = validation"),
                    fontsize="medium")
    return figure
