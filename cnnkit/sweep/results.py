"""The results of a sweep: one row per finished trial, ranked by the sweep's metric, kept
in results.json and results.csv (rewritten after every trial, so an interrupted sweep
knows which trials are finished) and shown as a table."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .plan import SweepPlan, Trial

DONE, STOPPED, FAILED = "done", "stopped early", "failed"
RESULTS_JSON, RESULTS_CSV = "results.json", "results.csv"


@dataclass
class TrialResult:
    trial: str
    spec: str
    hyper: dict
    status: str  # DONE, STOPPED or FAILED
    error: str | None  # a failed trial's one-line reason
    best: float | None  # the best epoch's value of the sweep's metric
    best_val_acc: float | None
    epochs: int  # epochs run
    seconds: float  # training time, summed over the epochs (validation not included)
    params: int
    macs: int  # per image


def trial_result(plan: SweepPlan, trial: Trial, rows: list[dict], status: str,
                 error: str | None = None) -> TrialResult:
    """A trial's row of the table, from its per-epoch metrics."""
    values = [r[plan.metric] for r in rows if r.get(plan.metric) is not None]
    accuracies = [r["val_acc"] for r in rows if r.get("val_acc") is not None]
    summary = plan.network(trial).summary()
    return TrialResult(
        trial.name, trial.spec, trial.hyper, status, error,
        best=(max if plan.higher_is_better else min)(values) if values else None,
        best_val_acc=max(accuracies) if accuracies else None, epochs=len(rows),
        seconds=sum(r.get("seconds") or 0.0 for r in rows), params=summary.params,
        macs=summary.macs)


def ranked(results, plan: SweepPlan) -> list[TrialResult]:
    """Best first; trials without a value of the metric (failed before an epoch) last."""
    def key(result):
        return (result.best is None, -plan.score(result.best) if result.best is not None else 0)

    return sorted(results, key=key)


class SweepProgress:
    """What a sweep has finished: read back from results.json on ``--resume``, added to by
    ``finish`` as trials end, and saved after each."""

    def __init__(self, plan: SweepPlan):
        self.plan = plan
        self.results = load_results(plan.folder)

    def pending(self) -> list[Trial]:
        return [t for t in self.plan.trials if t.name not in self.results]

    def finish(self, trial: Trial, status: str, error: str | None = None,
               rows: list[dict] | None = None) -> TrialResult:
        """Records a trial, with its per-epoch metrics (default: its run directory's)."""
        if rows is None:
            rows = read_rows(self.plan, trial)
        result = trial_result(self.plan, trial, rows, status, error)
        self.results[trial.name] = result
        save_results(self.plan, self.results.values())
        return result

    def table(self) -> list[TrialResult]:
        return ranked(self.results.values(), self.plan)


def read_rows(plan: SweepPlan, trial: Trial) -> list[dict]:
    from ..training.rundir import RunDirectory

    return RunDirectory(plan.trial_dir(trial)).read_metrics()


def save_results(plan: SweepPlan, results) -> None:
    from ..training.rundir import write_atomic

    table = ranked(results, plan)
    data = {"metric": plan.metric, "trials": [asdict(r) for r in table]}
    write_atomic(plan.folder / RESULTS_JSON, json.dumps(data, indent=1).encode())
    write_atomic(plan.folder / RESULTS_CSV, _csv(table, plan).encode())


def load_results(folder: Path) -> dict[str, TrialResult]:
    """The finished trials by name, best first; none when the sweep has not finished one."""
    path = Path(folder) / RESULTS_JSON
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["trials"]
        return {row["trial"]: TrialResult(**row) for row in rows}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({error}); delete it to run every trial "
                         "again (finished trials resume from their checkpoints)") from None


def _csv(table: list[TrialResult], plan: SweepPlan) -> str:
    hyper = list(dict.fromkeys(name for r in table for name in r.hyper))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    extra = [] if plan.metric == "val_acc" else [f"best_{plan.metric}"]
    writer.writerow(["rank", "trial", "spec", *hyper, "best_val_acc", *extra, "epochs",
                     "seconds", "params", "macs", "status", "error"])
    for rank, r in enumerate(table, 1):
        writer.writerow([rank, r.trial, r.spec, *(r.hyper.get(name, "") for name in hyper),
                         _blank(r.best_val_acc), *(_blank(r.best) for _ in extra), r.epochs,
                         f"{r.seconds:.3f}", r.params, r.macs, r.status, r.error or ""])
    return buffer.getvalue()


def _blank(value):
    return "" if value is None else value


def results_table(table: list[TrialResult], plan: SweepPlan):
    """The ranked results as a rich Table; a failed trial's error is shown in its row."""
    from rich.markup import escape
    from rich.table import Table

    from ..calculator import short_count

    hyper = list(dict.fromkeys(name for r in table for name in r.hyper))
    grid = Table(header_style="bold", title=f"{len(table)} trials, best {plan.metric} first",
                 title_justify="left")
    for name in ("#", "trial", "spec", *hyper):
        grid.add_column(name, justify="right" if name == "#" else "left")
    extra = [] if plan.metric == "val_acc" else [f"best {plan.metric}"]
    for name in ("best val acc", *extra, "epochs", "time", "params", "MACs"):
        grid.add_column(name, justify="right")
    grid.add_column("status")
    for rank, r in enumerate(table, 1):
        status = {DONE: "[green]done[/]", STOPPED: "[yellow]stopped early[/]"}.get(
            r.status, f"[red]failed[/]: {escape(r.error or '')}")
        cells = [str(rank), r.trial, r.spec, *(_cell(r.hyper.get(name)) for name in hyper),
                 _percent(r.best_val_acc), *(_cell(r.best) for _ in extra), str(r.epochs),
                 f"{r.seconds:.1f}s", f"{r.params:,}", short_count(r.macs)]
        grid.add_row(*map(escape, cells), status)
    return grid


def _cell(value) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.2%}"
