"""The training loop: data in, run directory out, progress reported as events.

The loop never prints; it calls ``on_event(kind, data)`` and the CLI decides how to show
it (progress bars, a table, JSON lines or nothing).  Everything random is derived from the
seed, the epoch and the step, so a resumed run repeats an uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..calculator import human_bytes
from ..data import OwnData, channel_stats, is_own_data, load_dataset, split_validation, to_float
from ..engine.backend import select_device
from ..engine.losses import softmax_cross_entropy
from ..engine.model import Model
from ..engine.optim import SGD, Adam, Momentum
from ..graph.network import Network
from .config import TrainConfig, schedule
from .evaluation import evaluate
from .interrupts import DeferredInterrupts
from .pipeline import Prefetcher
from .ranks import Alone
from .resources import memory_fit, peak_memory
from .rundir import RunDirectory, RunError, RunWriteError, load_arrays, save_arrays, write_atomic

EventHandler = Callable[[str, dict], None]


class TrainingError(Exception):
    """Training cannot start or cannot go on (mismatched data, memory, divergence)."""


@dataclass
class Progress:
    """Where a run stands: ``epoch`` epochs done plus ``step`` steps of the next one."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    data_wait: float = 0.0  # of ``seconds``, those spent waiting for the next batch


def make_optimizer(model: Model, config: TrainConfig):
    kinds = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
    return kinds[config.optimizer](model.parameters(), lr=config.lr,
                                   weight_decay=config.weight_decay)


def check_input(network: Network, shape: tuple[int, int, int], dataset: str) -> None:
    expected = network.input_shape
    if (expected.h, expected.w, expected.c) != tuple(shape):
        got = "x".join(map(str, shape))
        raise TrainingError(
            f"the spec's INPUT is {expected} but {dataset} images are {got}; "
            f"change the spec's INPUT to {got} (or train with --input {got})"
        )


class Trainer:
    """Trains ``network`` as ``config`` says into ``run``, reporting events to ``on_event``.

    With ``ranks`` (``cnnkit.training.ranks``) of more than one process, each trains on its
    block of every batch and the ranks sum their gradients; rank 0 alone writes the run
    directory and reports events."""

    def __init__(self, network: Network, config: TrainConfig, run: RunDirectory,
                 on_event: EventHandler | None = None, ranks: Alone | None = None):
        self.network, self.config, self.run = network, config, run
        self.ranks = ranks or Alone()
        self.writes = self.ranks.rank == 0
        self.stopped_together = False  # stopped at a step boundary all ranks agreed on
        self.emit = on_event if on_event and self.writes else (lambda kind, data: None)
        self.augmentation = config.augmentation

    @classmethod
    def resuming(cls, run: RunDirectory, epochs: int | None = None, device: str | None = None,
                 prefetch: int | None = None, on_event: EventHandler | None = None,
                 ranks: Alone | None = None) -> Trainer:
        """A trainer that continues ``run`` (``train(resume=True)``) with the network and
        config it was started with; ``epochs`` (the run's total: more extends it), ``device``
        and ``prefetch`` change where given, as they do not change the results."""
        if run.path.is_dir() and not run.config.exists():
            raise RunError(f"{run.path} holds no started run (no config.json): training "
                           "stopped before it began; start it again into the same folder (`cnnkit "
                           f"train SPEC --out {run.path}`)")
        network, config = run.read_network(), run.read_config()
        config.epochs = epochs or config.epochs
        config.device = device or config.device
        config.prefetch = config.prefetch if prefetch is None else prefetch
        return cls(network, config, run, on_event, ranks)

    # -- setup -----------------------------------------------------------------------------
    def _data(self, resume: bool):
        c = self.config
        if self.ranks.rank > 0:  # after rank 0, which downloads what is missing
            self.ranks.share(None)
        train = load_dataset(c.dataset, split="train", data_dir=c.data_dir,
                             on_progress=lambda name, done, total: self.emit(
                                 "download", {"file": name, "bytes": done, "total": total}),
                             own=self._own_data(resume))
        if self.ranks.rank == 0:
            self.ranks.share(None)
        if train.notice:
            self.emit("notice", {"message": train.notice})
        check_input(self.network, train.shape, train.name)
        if is_own_data(c.dataset):
            self._check_outputs(train.class_names)
        if c.limit:
            train = replace(train, images=train.images[:c.limit], labels=train.labels[:c.limit])
        try:
            train, val = split_validation(train, fraction=c.val_split, seed=c.seed) \
                if c.val_split > 0 else (train, None)
        except ValueError as error:
            raise TrainingError(f"validation split {c.val_split}: {error}") from None
        self._check_batch_norm(min(c.batch, len(train.labels)))
        self._check_ranks(len(train.labels))
        mean = std = None
        if c.standardize:
            mean, std = channel_stats(train.images)
            if self.writes:
                with self._writing():
                    self.run.write_normalization(mean, std)
        self.class_names = train.class_names
        self.dataset_name = train.name
        self.normalization = (mean, std)
        self.train_images, self.y_train = train.images, train.labels  # scaled batch by batch
        self.val = None if val is None else (to_float(val.images, mean, std), val.labels)
        self.emit("data", {"dataset": train.name, "source": train.source,
                           "train": len(self.y_train), "val": 0 if val is None else len(val.labels)})

    def _own_data(self, resume: bool) -> OwnData:
        """How an image folder is read: at the INPUT size, and on resume with the classes
        numbered as the run numbered them (a class added since is an error, not a shift)."""
        shape = self.network.input_shape
        classes = self.run.read_classes(self.network.output_shape.size) if resume else None
        return OwnData((shape.h, shape.w, shape.c), self.config.resize, classes,
                       on_decode=lambda done, total: self.emit(
                           "decode", {"dataset": self.config.dataset, "done": done,
                                      "total": total}))

    def _check_outputs(self, class_names) -> None:
        """Own data: one network output per class, so every prediction names a class."""
        outputs = self.network.output_shape.size
        if outputs != len(class_names):
            raise TrainingError(
                f"{self.config.dataset} has {len(class_names)} classes "
                f"({', '.join(class_names[:5])}{', ...' if len(class_names) > 5 else ''}) but "
                f"the network has {outputs} outputs: make its last layer FC-{len(class_names)}")

    def _check_batch_norm(self, images_per_step: int) -> None:
        """A BN over a flat or 1x1 input normalizes each value over the batch, which takes
        two images at least (steps never have one image alone, see ``_batch``)."""
        if images_per_step >= 2:
            return
        nodes = self.network.nodes
        for node in nodes:
            values = nodes[node.inputs[0]].out if node.kind == "bn" else None
            if values is not None and values.h * values.w == 1:
                raise TrainingError(
                    f"{node.name} normalizes each value over the batch, which needs 2 images "
                    "per step at least: use --batch 2 or more (and 2 training images)")

    def _check_ranks(self, images: int) -> None:
        """Every rank needs an image of every step: the smallest step (the last of an epoch
        may be short, see ``_batch``) must have one per rank."""
        size, batch = self.ranks.size, self.config.batch
        steps = max(1, math.ceil(images / batch) - (images % batch == 1 and images > batch))
        smallest = min(batch, images - (steps - 1) * batch)
        if smallest < size:
            raise TrainingError(
                f"{size} ranks share each step's images, but the "
                f"{'batch' if smallest == batch else 'last step of an epoch'} has {smallest}: "
                f"use --batch {size} or more, or a --limit that leaves a last step of {size} "
                "images or more")

    def _check_memory(self, xp) -> None:
        c, ranks = self.config, self.ranks
        # each rank holds its block of the batch, in its share of this machine's memory
        fit = memory_fit(self.network, -(-c.batch // ranks.size), dtype=c.dtype,
                         optimizer=c.optimizer, xp=xp, sharing=ranks.local)
        self.estimate = fit.needed_bytes
        self.emit("memory", {"estimate_bytes": fit.needed_bytes, "available_bytes": fit.free_bytes})
        if not fit.fits:
            each = f" for each of {ranks.size} ranks" if ranks.size > 1 else ""
            largest = fit.largest_batch * ranks.size  # the blocks of all ranks
            raise TrainingError(
                f"batch {c.batch} needs about {human_bytes(fit.needed_bytes)}{each} but only "
                f"{human_bytes(fit.free_bytes)} is free{each}; the largest batch that fits is "
                f"{largest}" + ("" if largest else
                                " (not even one image: the parameters alone do not fit)")
            )

    # -- checkpoints -----------------------------------------------------------------------
    def _save_checkpoint(self, model, optimizer, progress: Progress, metrics: list) -> None:
        # saved at once, so no copies (which would double a large model's memory for a moment)
        arrays = {f"model/{k}": v for k, v in model.state_dict(copy=False).items()}
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict(copy=False).items()})
        arrays["progress"] = np.array([progress.epoch, progress.step, progress.correct,
                                       progress.seen], dtype=np.int64)
        arrays["progress_float"] = np.array([progress.loss_sum, progress.seconds,
                                             progress.data_wait])
        path = self.run.checkpoint_path(progress.epoch, progress.step)
        if path == self.saved_checkpoint:  # this very state is on disk already
            return
        if not self.writes:  # rank 0 writes it
            self.saved_checkpoint = path
            return
        with self._writing():
            save_arrays(path, arrays)
            self.run.write_metrics(metrics)
        self.saved_checkpoint = path

    @contextlib.contextmanager
    def _writing(self):
        """Turns a failed write (disk full, read-only folder) into a TrainingError that says
        what is intact and how to go on; atomic writes leave every earlier file whole."""
        try:
            yield
        except RunWriteError as error:
            if not self.run.config.exists():
                raise TrainingError(f"{error}; choose another --out") from None
            kept = self.saved_checkpoint
            state = (f"the last checkpoint, {kept.name}, is intact" if kept else
                     "no checkpoint was written yet (a resumed run starts over)")
            raise TrainingError(f"{error}; {state}: make room, then continue with "
                                f"`cnnkit train --resume {self.run.path}`") from None

    def _restore(self, model, optimizer) -> tuple[Progress, list]:
        """The state of the newest checkpoint that reads back whole; damaged ones are
        skipped with a notice.  A run killed before its first checkpoint starts over: the
        model was just built from the run's seed, so it holds the initial weights."""
        skipped = []
        for path in reversed(self.run.checkpoints_in_order()):
            try:
                progress = self._load_checkpoint(path, model, optimizer)
            except (RunError, ValueError) as error:
                skipped.append(f"{path.name} ({' '.join(str(error).split())})")
                continue
            note = f"resuming from {path.name} (epoch {progress.epoch + 1}, step {progress.step})"
            break
        else:
            if skipped:  # never throw a run's progress away unasked
                raise RunError(f"no checkpoint in {self.run.checkpoints} can be resumed: "
                               f"{'; '.join(skipped)}. Was the spec edited? Start a new run "
                               "with another --out")
            path, progress = None, Progress()
            note = "no checkpoint was written before the run stopped: starting it over"
            self._restart_from_initial_weights(model)
        if skipped:
            note = f"skipped the damaged {', '.join(skipped)}; {note}"
        self.emit("notice", {"message": note})
        metrics = [row for row in self.run.read_metrics() if row["epoch"] <= progress.epoch]
        self.saved_checkpoint = path
        return progress, metrics

    def _restart_from_initial_weights(self, model) -> None:
        """The run's weights_init.npz into ``model``, or, when the file is missing or was
        cut short, written anew from ``model`` (built from the run's seed: the same)."""
        try:
            arrays = load_arrays(self.run.weights_init)
        except RunError:
            if not self.writes:  # the same weights: rank 0 writes them
                return
            with self._writing():
                save_arrays(self.run.weights_init, model.state_dict(copy=False))
            return
        try:
            model.load_state_dict(arrays)
        except ValueError as error:
            raise RunError(f"the initial weights in {self.run.path} do not fit its spec (was "
                           f"it edited?): {' '.join(str(error).split())}") from None

    def _load_checkpoint(self, path, model, optimizer) -> Progress:
        """Loads a checkpoint after checking all of it, so a damaged one changes nothing."""
        arrays = load_arrays(path)
        counts, floats = arrays.get("progress"), arrays.get("progress_float")
        if (counts is None or floats is None or counts.shape != (4,)
                or floats.shape not in ((2,), (3,))  # runs before data_wait: 2
                or counts.dtype.kind not in "iu" or counts.min() < 0
                or counts[1] >= self._steps_per_epoch() or counts[1] and not counts[3]):
            raise RunError("it has no valid progress record")
        weights = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        slots = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
        model.check_state_dict(weights)
        optimizer.check_state_dict(slots)
        model.load_state_dict(weights)
        optimizer.load_state_dict(slots)
        epoch, step, correct, seen = (int(v) for v in counts)
        loss_sum, seconds, data_wait = (float(v) for v in (*floats, 0.0)[:3])
        return Progress(epoch, step, loss_sum, correct, seen, seconds, data_wait)

    # -- the loop --------------------------------------------------------------------------
    def train(self, resume: bool = False) -> list[dict]:
        # Overflow shows up as a non-finite loss, which _step reports with a cause; NumPy's
        # own warnings would only bury that message.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._train(resume)

    def _train(self, resume: bool) -> list[dict]:
        c = self.config
        # rank 0's answer, before it writes anything
        if not resume and self.ranks.share(self.run.config.exists()):  # never train over a run
            raise RunError(f"{self.run.path} already holds a run; resume it or train into "
                           "another folder")
        self.saved_checkpoint = None
        if self.writes:
            self.run.remove_temp_files()
        xp, device = select_device(c.device)
        if self.ranks.size > 1 and xp is not np:
            raise TrainingError(f"ranks train on the CPU, not on {device}: resume with "
                                "--device cpu")
        self.emit("notice", {"message": device})
        self._data(resume)
        self._check_memory(xp)
        with DeferredInterrupts() as self.interrupts:
            with peak_memory(xp) as measured:
                model = Model(self.network, xp=xp, dtype=c.dtype, seed=c.seed,
                              init_std=c.init_std)
                if self.ranks.size > 1:  # before the optimizer takes the gradients
                    self._gradients = model.train_in_ranks(self.ranks)
                optimizer = make_optimizer(model, c)
                if resume:
                    progress, metrics = self._restore(model, optimizer)
                else:
                    progress, metrics = Progress(), []
                    if self.writes:
                        with self._writing():
                            write_atomic(self.run.spec, self.network.source.encode())
                            write_atomic(self.run.config, c.to_json().encode())
                            self.run.write_classes(self.class_names)
                            save_arrays(self.run.weights_init, model.state_dict(copy=False))
                first_steps = self._epochs(model, optimizer, progress, metrics, measure_steps=2)
            self.emit("memory", {"estimate_bytes": self.estimate,
                                 "measured_peak_bytes": measured["peak_bytes"]})
            if first_steps:
                self._epochs(model, optimizer, progress, metrics)
            if self.writes:
                with self._writing():
                    save_arrays(self.run.weights_final, model.state_dict(copy=False))
        self.emit("end", {"metrics": metrics, "run": str(self.run.path)})
        return metrics

    def _stop_if_asked(self) -> None:
        """At a step boundary: a pending Ctrl-C or `kill` stops training here, where the
        state is that of a whole number of steps (see interrupts.py).  Ranks stop together,
        when any of them was asked."""
        if self.ranks.any(self.interrupts.requested is not None):
            self.stopped_together = True
            raise KeyboardInterrupt

    def _batch(self, order, step: int, steps: int):
        """The images of ``step``: ``batch`` of them, and all that are left at the last
        step.  That one has a single image more rather than a lone image of its own, whose
        batch-norm statistics would be the image itself (a variance of 0)."""
        batch = self.config.batch
        return order[step * batch:(step + 1) * batch if step + 1 < steps else len(order)]

    def _steps_per_epoch(self) -> int:
        n, batch = len(self.y_train), self.config.batch
        steps = math.ceil(n / batch)
        return steps - 1 if n % batch == 1 and steps > 1 else steps  # see _batch

    def _epochs(self, model, optimizer, progress: Progress, metrics: list,
                measure_steps: int | None = None) -> bool:
        """Runs the remaining epochs (or only ``measure_steps`` steps); True if work is left."""
        c = self.config
        n = len(self.y_train)
        steps_per_epoch = self._steps_per_epoch()
        lr_at = schedule(c)
        taken = 0
        while progress.epoch < c.epochs:
            order = np.random.default_rng([c.seed, progress.epoch]).permutation(n)
            optimizer.lr = lr_at(progress.epoch)
            if progress.step == 0:
                self.emit("epoch_start", {"epoch": progress.epoch + 1, "steps": steps_per_epoch})
            make = functools.partial(self._make_batch, model, order, progress.epoch, steps_per_epoch)
            batches = Prefetcher(make, range(progress.step, steps_per_epoch), c.prefetch)
            started = time.perf_counter()
            try:
                with batches:
                    while progress.step < steps_per_epoch:
                        self._stop_if_asked()
                        if measure_steps is not None and taken == measure_steps:
                            _clock(progress, started, batches)
                            return True
                        x, y = batches.next_batch()
                        loss, correct = self._step(model, optimizer, x, y, progress)
                        progress.step += 1
                        progress.loss_sum += loss * len(y)
                        progress.correct += correct
                        progress.seen += len(y)
                        taken += 1
                        self.emit("step", {"epoch": progress.epoch + 1, "step": progress.step,
                                           "steps": steps_per_epoch, "loss": loss,
                                           "acc": progress.correct / progress.seen,
                                           "images_per_s": progress.seen / max(
                                               progress.seconds + time.perf_counter() - started,
                                               1e-9)})
            except KeyboardInterrupt:
                # raised at a step boundary (by the check above or by an event handler), so
                # the state is that of a whole number of steps; a second, forcing Ctrl-C
                # may have come mid-step, and then the last checkpoint is left as it is
                if not self.interrupts.forced:
                    _clock(progress, started, batches)
                    self._save_checkpoint(model, optimizer, progress, metrics)
                raise
            _clock(progress, started, batches)
            metrics.append(self._finish_epoch(model, optimizer, progress))
            progress.epoch, progress.step = progress.epoch + 1, 0
            progress.loss_sum, progress.correct, progress.seen = 0.0, 0, 0
            progress.seconds = progress.data_wait = 0.0
            self._save_checkpoint(model, optimizer, progress, metrics)
            if self.writes:
                self.run.prune_checkpoints(c.keep_checkpoints)
            self.emit("epoch", metrics[-1])
        self._stop_if_asked()  # the state is saved: the epoch's checkpoint was just written
        return False

    def _make_batch(self, model, order, epoch: int, steps: int, step: int):
        """The inputs of one step on the model's device, augmented and scaled (among ranks
        this rank's block of them), and the step's labels (all of them): a function of
        (epoch, step) alone, so the prefetch thread may make it early."""
        xp = model.xp
        index = self._batch(order, step, steps)
        rows = self.ranks.share_of(len(index))
        images = xp.asarray(self.train_images[index[rows]])
        if self.augmentation:
            images = self.augmentation.apply(images, (self.config.seed, epoch, step), rows,
                                             len(index))
        x = to_float(images, *self.normalization).astype(model.dtype, copy=False)
        return x, xp.asarray(self.y_train[index])

    def _step(self, model, optimizer, x, y, progress: Progress) -> tuple[float, int]:
        """One step on the inputs ``x`` (among ranks, this rank's block of the batch) and
        the batch's labels ``y``: its loss (the batch's mean) and how many of its images the
        model classified right."""
        c, ranks = self.config, self.ranks
        model.reseed(c.seed, progress.epoch, progress.step)
        rows = ranks.block(len(y))
        y, share = y[rows], (rows.stop - rows.start) / len(y)
        logits = model.forward(x, train=True)
        loss, dlogits = softmax_cross_entropy(logits, y)
        correct = int((logits.reshape(len(y), -1).argmax(axis=1) == y).sum())
        if ranks.size > 1:  # the whole batch's mean loss, and its gradient
            loss, correct = ranks.sum(np.array([float(loss) * share, correct]))
            dlogits *= share
        loss = float(loss)
        if not math.isfinite(loss):
            last = self.saved_checkpoint
            raise TrainingError(
                f"the loss became {loss} at epoch {progress.epoch + 1}, step {progress.step + 1}; "
                f"the learning rate ({optimizer.lr:g}) is probably too high: try --lr "
                f"{optimizer.lr / 10:g}. "
                + (f"The last good checkpoint is kept: {last}" if last else
                   "No checkpoint was written yet.")
            )
        model.backward(dlogits, input_grad=False)
        if ranks.size > 1:  # every parameter's gradient, in one message
            ranks.sum(self._gradients, in_place=True)
        optimizer.step()
        return loss, int(correct)

    def _finish_epoch(self, model, optimizer, progress: Progress) -> dict:
        row = {
            "epoch": progress.epoch + 1,
            "train_loss": progress.loss_sum / progress.seen,
            "train_acc": progress.correct / progress.seen,
            "val_loss": None, "val_acc": None,
            "lr": optimizer.lr,
            "seconds": progress.seconds,
            "images_per_s": progress.seen / max(progress.seconds, 1e-9),
            "data_wait": progress.data_wait / max(progress.seconds, 1e-9),
        }
        if self.val is not None:
            row["val_loss"], row["val_acc"] = self._validate(model)
        return row

    def _validate(self, model) -> tuple[float, float]:
        """Loss and accuracy on the validation images; ranks each take a share of them."""
        images, labels = self.val
        rows = self.ranks.share_of(len(labels))
        result = evaluate(model, images[rows], labels[rows], num_classes=len(self.class_names),
                          batch=max(self.config.batch, 256))
        if self.ranks.size == 1:
            return result.loss, result.accuracy
        count = rows.stop - rows.start
        loss_sum, correct = self.ranks.sum(np.array(
            [result.loss * count, float(np.trace(result.confusion))]))
        return float(loss_sum) / len(labels), float(correct) / len(labels)


def _clock(progress: Progress, started: float, batches: Prefetcher) -> None:
    """Adds the time since ``started``, and of it the time spent waiting for batches."""
    progress.seconds += time.perf_counter() - started
    progress.data_wait += batches.waited
