"""What a training run was asked to do, saved with the run so it can be resumed and
reproduced."""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, dataclass, fields

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "cosine")
DEVICES = ("auto", "cpu", "gpu")
LAUNCHERS = ("none", "mpi")  # how the processes training one run start (training/ranks.py)
DEFAULT_LR = {"sgd": 0.05, "momentum": 0.01, "adam": 0.001}


@dataclass
class TrainConfig:
    dataset: str = "mnist"
    epochs: int = 8
    batch: int = 64
    optimizer: str = "adam"
    lr: float | None = None  # None: the optimizer's default (DEFAULT_LR)
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    val_split: float = 0.1
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    standardize: bool = False
    data_dir: str | None = None
    limit: int | None = None  # train on the first N training images only
    keep_checkpoints: int = 3
    init_std: float | None = None  # N(0, std^2) weights instead of He/Glorot (textbook: 0.01)
    augment: str = ""  # transforms applied to each training batch, e.g. "flip,crop:4"
    resize: str = "crop"  # how own images are brought to the INPUT size (data/images.py)
    prefetch: int = 1  # batches made ahead in a thread (0: none); never changes results

    @property
    def augmentation(self):
        from ..data.augment import parse_augment

        return parse_augment(self.augment)

    def __post_init__(self):
        if self.lr is None:
            self.lr = DEFAULT_LR.get(self.optimizer, 0.01)
        problems = []
        if self.epochs < 1:
            problems.append("epochs must be at least 1")
        if self.batch < 1:
            problems.append("batch must be at least 1")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"lr schedule must be one of {', '.join(SCHEDULES)}")
        if not 0 <= self.val_split < 1:
            problems.append("val split must be in [0, 1)")
        if not 0 < self.lr < math.inf:
            problems.append("learning rate must be positive")
        if self.init_std is not None and not 0 < self.init_std < math.inf:
            problems.append("init std must be positive")
        if not 0 <= self.weight_decay < math.inf:
            problems.append("weight decay must be >= 0")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if self.limit is not None and self.limit < 1:
            problems.append("limit must be at least 1")
        if self.keep_checkpoints < 1:
            problems.append("keep checkpoints must be at least 1")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)}")
        if self.dtype not in ("float32", "float64"):
            problems.append("dtype must be float32 or float64")
        if self.prefetch < 0:
            problems.append("prefetch must be >= 0")
        problems += self._data_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _data_problems(self) -> list[str]:
        """Checks --augment (stored in its canonical spelling) and --resize."""
        from ..data.images import RESIZE_MODES

        problems = []
        try:
            self.augment = str(self.augmentation)
        except ValueError as error:
            problems.append(str(error))
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {', '.join(RESIZE_MODES)}")
        return problems

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The config saved with a run; ValueError names the first field that is not what
        ``TrainConfig`` holds (a file edited by hand must not fail later, mid-command)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for field in fields(cls):
            if field.name in data:
                values[field.name] = _typed(field.name, data[field.name], hints[field.name])
        return cls(**values)


_NAMES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def _typed(name: str, value, hint):
    """``value`` checked against a field's type (``int``, ``float | None``, ...); JSON's
    whole numbers count as floats, but neither booleans nor floats count as whole numbers."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is bool and isinstance(value, bool) or kind is str and isinstance(value, str):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    expected = " or ".join(_NAMES.get(kind, "null") for kind in allowed)
    raise ValueError(f"{name} must be {expected}, found {json.dumps(value)}")



def schedule(config: TrainConfig):
    """The learning rate as a function of the 0-based epoch: constant, step (x0.1 at half
    and at three quarters of the run) or cosine annealing."""
    from ..engine import schedules

    if config.lr_schedule == "step":
        return schedules.step(config.lr, max(1, config.epochs // 2 + config.epochs % 2))
    if config.lr_schedule == "cosine":
        return schedules.cosine(config.lr, config.epochs)
    return schedules.constant(config.lr)
