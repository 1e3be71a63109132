"""The run directory: everything needed to evaluate, predict, resume and visualize.

    spec.txt            the spec text as trained
    config.json         TrainConfig
    weights_init.npz    weights before the first step
    weights_final.npz   weights after the last epoch
    checkpoints/        epoch-NNN.npz (model, optimizer, progress), newest kept
    metrics.jsonl       one JSON object per epoch
    metrics.csv         the same as CSV
    normalization.json  per-channel mean/std when --standardize was used

Files are written to a temporary name and renamed, so a crash never leaves half a file;
arrays are stored with ``np.savez`` and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..graph.build import parse
from ..graph.network import Network
from .config import TrainConfig

CSV_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
              "images_per_s")


_UMASK = os.umask(0o022)
os.umask(_UMASK)


class RunError(Exception):
    """A run directory that lacks what a command needs."""


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file to write that appears at ``path`` only once it is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run is shared like any file
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` streamed into the file: no copy of the arrays is held in memory."""
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (OSError, ValueError) as error:
        raise RunError(f"{path} cannot be read ({error})") from None


class RunDirectory:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.spec = self.path / "spec.txt"
        self.config = self.path / "config.json"
        self.weights_init = self.path / "weights_init.npz"
        self.weights_final = self.path / "weights_final.npz"
        self.checkpoints = self.path / "checkpoints"
        self.metrics_jsonl = self.path / "metrics.jsonl"
        self.metrics_csv = self.path / "metrics.csv"
        self.normalization = self.path / "normalization.json"

    def require(self, *files: Path) -> None:
        if not self.path.is_dir():
            raise RunError(f"{self.path} is not a run directory (make one with `cnnkit train`)")
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise RunError(f"{self.path} has no {', '.join(missing)}; is it a finished run?")

    def read_network(self) -> Network:
        self.require(self.spec)
        return parse(self.spec.read_text(encoding="utf-8"), filename=str(self.spec))

    def read_config(self) -> TrainConfig:
        self.require(self.config)
        return TrainConfig.from_json(self.config.read_text(encoding="utf-8"))

    def read_normalization(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.normalization.exists():
            return None
        data = json.loads(self.normalization.read_text(encoding="utf-8"))
        return np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32)

    def write_normalization(self, mean, std) -> None:
        text = json.dumps({"mean": [float(m) for m in mean], "std": [float(s) for s in std]})
        write_atomic(self.normalization, text.encode())

    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:03d}.npz"

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("epoch-*.npz"))
        return found[-1] if found else None

    def prune_checkpoints(self, keep: int) -> None:
        for old in sorted(self.checkpoints.glob("epoch-*.npz"))[:-keep]:
            old.unlink(missing_ok=True)

    def read_metrics(self) -> list[dict]:
        if not self.metrics_jsonl.exists():
            return []
        return [json.loads(line) for line in
                self.metrics_jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]

    def write_metrics(self, rows: list[dict]) -> None:
        write_atomic(self.metrics_jsonl,
                     "".join(json.dumps(r) + "\n" for r in rows).encode())
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.metrics_csv, buffer.getvalue().encode())

    def weights(self, which: str = "final") -> dict[str, np.ndarray]:
        path = {"final": self.weights_final, "init": self.weights_init}.get(which)
        if path is None:
            raise ValueError("which must be 'final' or 'init'")
        if which == "final" and not path.exists():
            latest = self.latest_checkpoint()
            if latest is None:
                self.require(path)
            arrays = load_arrays(latest)
            return {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        self.require(path)
        return load_arrays(path)
