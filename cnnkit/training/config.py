"""What a training run was asked to do, saved with the run so it can be resumed and
reproduced."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "cosine")
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
        if not self.lr > 0:
            problems.append("learning rate must be positive")
        if self.init_std is not None and not self.init_std > 0:
            problems.append("init std must be positive")
        if self.weight_decay < 0:
            problems.append("weight decay must be >= 0")
        if self.dtype not in ("float32", "float64"):
            problems.append("dtype must be float32 or float64")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})



def schedule(config: TrainConfig):
    """The learning rate as a function of the 0-based epoch: constant, step (x0.1 at half
    and at three quarters of the run) or cosine annealing."""
    from ..engine import schedules

    if config.lr_schedule == "step":
        return schedules.step(config.lr, max(1, config.epochs // 2 + config.epochs % 2))
    if config.lr_schedule == "cosine":
        return schedules.cosine(config.lr, config.epochs)
    return schedules.constant(config.lr)
