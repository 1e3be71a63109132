"""Training from Python: train a network into a run directory, load a run, evaluate it and
predict with it.

A thin layer over ``cnnkit.training`` (which the CLI uses too), so a run made here is a run
``cnnkit evaluate`` and ``cnnkit visualize`` read, and the other way round.  The run
directory is the saved form: training writes it as it goes (spec, config, weights,
checkpoints, metrics) and ``load_run`` reads it back.  ``import cnnkit`` reaches these
names lazily, so that importing cnnkit does not import NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .graph.network import Network
from .training.config import TrainConfig
from .training.evaluation import Evaluation
from .training.predict import TrainedRun
from .training.predict import load_run as _load_trained
from .training.ranks import connect, ending_all_on_failure
from .training.rundir import RunDirectory
from .training.trainer import Trainer

EpochCallback = Callable[[dict], None]


@dataclass
class Run:
    """A trained run directory with its model loaded."""

    trained: TrainedRun

    @property
    def path(self) -> Path:
        return self.trained.run.path

    @property
    def network(self) -> Network:
        return self.trained.network

    @property
    def model(self):
        """The engine's ``Model`` (``forward``, ``state_dict``, ...)."""
        return self.trained.model

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.trained.class_names

    @property
    def metrics(self) -> list[dict]:
        """One dict per finished epoch, as ``on_epoch`` received them."""
        return self.trained.run.read_metrics()

    def evaluate(self, dataset: str | None = None, split: str = "test") -> Evaluation:
        """Loss, accuracy, per-class accuracy and the confusion matrix on a split of
        ``dataset`` (default: the one trained on)."""
        return self.trained.evaluate(dataset, split=split)[1]

    def predict(self, images) -> np.ndarray:
        """Class probabilities, one row per image: ``images`` are uint8 NHWC pixels in the
        network's input size, or image files (converted as ``cnnkit predict`` does)."""
        if not isinstance(images, np.ndarray):
            images = np.stack([self.trained.read_image(path) for path in images])
        batch = self.trained.batch_that_fits(min(len(images), 256))
        return self.model.predict_proba(self.trained.prepare(images), batch)

    def weights(self, which: str = "final") -> dict[str, np.ndarray]:
        """The "final" or "init" (before training) arrays, by the engine's names."""
        return self.trained.weights(which)

    def __repr__(self) -> str:
        epochs = len(self.metrics)
        return (f"<Run {self.path}: {self.network.input_shape} -> {self.network.output_shape}, "
                f"{epochs} epoch{'' if epochs == 1 else 's'} trained>")


def train(network: Network, out: str | Path, *, on_epoch: EpochCallback | None = None,
          launcher: str = "none", **options) -> Run:
    """Trains ``network`` and writes the run directory ``out``; returns the trained run.

    ``options`` are those of ``cnnkit train`` (``TrainConfig``: dataset="mnist-sample",
    epochs=2, batch=64, lr=..., limit=..., device="cpu", ...).  ``on_epoch(row)`` is called
    after each epoch with its metrics (epoch, train_loss, train_acc, val_loss, val_acc, lr,
    seconds, ...), once that epoch's checkpoint is written.  An interrupted run continues
    with ``resume(OUT)`` (or ``cnnkit train --resume OUT``); a directory that already holds
    a run is never trained over (``RunError``).  ``launcher="mpi"``: this process is one of
    the ranks mpiexec started, which train together, each on its share of every batch
    (``cnnkit.training.ranks``: on the CPU; rank 0 writes ``out`` and calls ``on_epoch``;
    a rank that fails ends the others).
    """
    if launcher != "none":
        options.setdefault("device", "cpu")
    config = TrainConfig(**options)
    ranks = connect(launcher, config.device)
    trainer = Trainer(network, config, RunDirectory(out), on_event=_epochs_to(on_epoch),
                      ranks=ranks)
    with ending_all_on_failure(ranks, trainer):
        trainer.train()
        ranks.share(None)  # the others read ``out`` once rank 0 has written it
    return load_run(out, device=config.device)


def resume(out: str | Path, *, epochs: int | None = None, device: str | None = None,
           on_epoch: EpochCallback | None = None, launcher: str = "none") -> Run:
    """Continues the run directory ``out`` from its last checkpoint, bit for bit as if it
    had never stopped, and returns the trained run.  ``epochs``: the run's total (more than
    it was started with extends it); ``device``: default, the one it was started on;
    ``on_epoch`` and ``launcher`` as for ``train``, for the epochs trained now."""
    if launcher != "none":
        device = device or "cpu"
    ranks = connect(launcher, device)
    trainer = Trainer.resuming(RunDirectory(out), epochs, device, on_event=_epochs_to(on_epoch),
                               ranks=ranks)
    with ending_all_on_failure(ranks, trainer):
        trainer.train(resume=True)
        ranks.share(None)
    return load_run(out, device=trainer.config.device)


def _epochs_to(on_epoch: EpochCallback | None):
    """The trainer's event handler that passes each finished epoch's row to ``on_epoch``."""
    def on_event(kind: str, data: dict) -> None:
        if kind == "epoch" and on_epoch is not None:
            on_epoch(data)
    return on_event


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """A run directory written by ``train`` or ``cnnkit train``, every file checked."""
    return Run(_load_trained(path, device=device))
