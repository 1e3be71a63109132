"""The plan of a sweep: its trials (every combination of the given values, or ``samples``
random draws from them), saved as sweep.json before the first trial starts.

The plan holds the spec texts and every training option, so a continued sweep (``--resume``)
and each Ray worker train exactly the trials that were planned, whatever happened to the
spec files since.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..graph.build import parse
from ..graph.network import Network
from ..training.config import TrainConfig

SWEEP_FILE = "sweep.json"
# what can be compared, and which way is better
METRICS = {"val_acc": "max", "val_loss": "min", "train_acc": "max", "train_loss": "min"}
EARLY_STOPPING = ("asha",)
# the options a sweep varies; each trial's table row shows lr and batch at least
AXES = {"lr": float, "batch": int, "optimizer": str, "weight_decay": float}
SHOWN_ALWAYS = ("lr", "batch")


@dataclass(frozen=True)
class Range:
    """``LOW:HIGH`` of a number option, drawn from by random search: log-uniformly when
    LOW > 0 (learning rates span decades), else uniformly."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        if self.low > 0:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


def parse_values(name: str, text: str) -> list | Range:
    """``0.01,0.003`` -> [0.01, 0.003]; ``1e-4:1e-2`` -> Range (numbers other than batch)."""
    kind = AXES[name]
    option = f"--{name.replace('_', '-')}"
    try:
        if ":" in text and kind is float:
            low, high = (float(part) for part in text.split(":"))
            if not 0 <= low < high < math.inf:
                raise ValueError
            return Range(low, high)
        values = [kind(part.strip()) for part in text.split(",")]
    except ValueError:
        example = "0.01,0.003 or a range 1e-4:1e-2" if kind is float else "64,128"
        raise ValueError(f"{option} {text!r}: write values separated by commas, like "
                         f"{example}") from None
    if not values or any(v == "" for v in values):
        raise ValueError(f"{option} {text!r} has an empty value")
    return list(dict.fromkeys(values))  # a value given twice is one trial, not two


@dataclass(frozen=True)
class Trial:
    name: str  # the run directory's name inside the sweep folder
    spec: str  # the spec's label: its path as given
    hyper: dict  # the swept options' values


@dataclass
class SweepPlan:
    folder: Path
    specs: dict[str, str]  # label -> spec text
    base: dict  # TrainConfig fields shared by all trials
    trials: list[Trial]
    metric: str = "val_acc"
    early_stop: str | None = None
    _networks: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric] == "max"

    @property
    def epochs(self) -> int:
        return self.config(self.trials[0]).epochs

    def score(self, value: float) -> float:
        """The metric turned so that higher is better (losses negated)."""
        return value if self.higher_is_better else -value

    def trial(self, name: str) -> Trial:
        return next(t for t in self.trials if t.name == name)

    def config(self, trial: Trial) -> TrainConfig:
        return TrainConfig(**{**self.base, **trial.hyper})

    def network(self, trial: Trial) -> Network:
        if trial.spec not in self._networks:
            self._networks[trial.spec] = parse(self.specs[trial.spec], filename=trial.spec)
        return self._networks[trial.spec]

    def trial_dir(self, trial: Trial) -> Path:
        return self.folder / trial.name

    def save(self) -> None:
        from ..training.rundir import write_atomic

        data = {"specs": self.specs, "base": self.base, "metric": self.metric,
                "early_stop": self.early_stop, "trials": [asdict(t) for t in self.trials]}
        write_atomic(self.folder / SWEEP_FILE, json.dumps(data, indent=1).encode())

    @classmethod
    def load(cls, folder: str | Path) -> SweepPlan:
        folder = Path(folder).absolute()
        path = folder / SWEEP_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(folder, data["specs"], data["base"],
                       [Trial(**t) for t in data["trials"]], data["metric"], data["early_stop"])
        except FileNotFoundError:
            raise ValueError(f"{folder} holds no sweep (no {SWEEP_FILE})") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is damaged ({error})") from None


def make_plan(folder: str | Path, specs: dict[str, str], base: dict, axes: dict,
              samples: int | None = None, metric: str = "val_acc",
              early_stop: str | None = None, seed: int = 0) -> SweepPlan:
    """Every combination of ``specs`` and the ``axes`` values (lists), or with ``samples``
    that many random draws (lists and Ranges); ValueError says what cannot be trained."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    if early_stop not in (None, *EARLY_STOPPING):
        raise ValueError(f"early stopping must be one of {', '.join(EARLY_STOPPING)}")
    defaults = TrainConfig(**base)
    if metric.startswith("val_") and defaults.val_split == 0:
        raise ValueError(f"--metric {metric} needs a validation split (--val-split > 0)")
    # an lr not given is each optimizer's default, filled in per trial below
    axes = {name: axes.get(name) or [None if name == "lr" else getattr(defaults, name)]
            for name in AXES if name in axes or name in SHOWN_ALWAYS}
    if samples is None:
        ranged = [name for name, values in axes.items() if isinstance(values, Range)]
        if ranged:
            raise ValueError(f"a range (--{ranged[0].replace('_', '-')}) is drawn from by "
                             "random search: give --samples N")
        combos = list(itertools.product(specs, *axes.values()))
    else:
        rng = random.Random(seed)
        combos = [(rng.choice(list(specs)),
                   *(v.draw(rng) if isinstance(v, Range) else rng.choice(v) for v in axes.values()))
                  for _ in range(samples)]
    width = len(str(len(combos)))
    trials = []
    for number, (spec, *values) in enumerate(combos, 1):
        hyper = dict(zip(axes, values))
        hyper["lr"] = TrainConfig(**{**base, **hyper}).lr  # a ValueError names the option
        label = "-".join(f"{name}{_short(value)}" for name, value in hyper.items())
        trials.append(Trial(f"{number:0{width}d}-{_stem(spec)}-{label}", spec, hyper))
    return SweepPlan(Path(folder).absolute(), dict(specs), dict(base), trials, metric, early_stop)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _stem(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", Path(label).stem) or "spec"


def expand_sweeps(paths) -> list[Path]:
    """``paths`` with each sweep folder replaced by its trials that have finished an epoch,
    best first once results.json ranks them (else in plan order): `visualize curves`
    overlays all trials of a sweep.  A sweep without such a trial stays itself, which the
    caller reports as a folder without metrics."""
    from ..training.rundir import RunError
    from .results import load_results

    expanded = []
    for path in map(Path, paths):
        if not (path / SWEEP_FILE).is_file():
            expanded.append(path)
            continue
        try:
            plan = SweepPlan.load(path)
            ranked = list(load_results(plan.folder))
        except ValueError as error:
            raise RunError(str(error)) from None
        names = ranked + [t.name for t in plan.trials if t.name not in ranked]
        trials = [path / name for name in names if (path / name / "metrics.jsonl").exists()]
        expanded += trials or [path]
    return expanded
