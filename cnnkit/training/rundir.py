"""The run directory: everything needed to evaluate, predict, resume and visualize.

    spec.txt            the spec text as trained
    config.json         TrainConfig
    weights_init.npz    weights before the first step
    weights_final.npz   weights after the last epoch
    checkpoints/        epoch-NNN.npz (model, optimizer, progress), newest kept
    metrics.jsonl       one JSON object per epoch
    metrics.csv         the same as CSV
    normalization.json  per-channel mean/std when --standardize was used
    classes.json        the class names, in the order of the network's outputs

Files are written to a temporary name and renamed, so a crash never leaves half a file;
arrays are stored with ``np.savez`` and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..graph.build import parse
from ..graph.network import Network
from ..language.errors import SpecError
from .config import TrainConfig

CSV_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
              "images_per_s", "data_wait")


_UMASK = os.umask(0o022)
os.umask(_UMASK)


# epoch-002.npz: 2 epochs done; epoch-002-step-000040.npz: and 40 steps of the third
CHECKPOINT = re.compile(r"epoch-(\d+)(?:-step-(\d+))?\.npz")
TEMP_FILE = re.compile(r"\..+\.[^.]+\.tmp")  # what atomic_file leaves if killed mid-write


class RunError(Exception):
    """A run directory that lacks what a command needs, or holds a damaged file."""


class RunWriteError(RunError):
    """A run file could not be written (disk full, read-only folder); the file's previous
    version, if any, is intact."""


@contextlib.contextmanager
def atomic_file(path: Path):
    """A binary file to write that appears at ``path`` only once it is complete."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a run is shared like any file
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never what it points to
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise RunWriteError(f"cannot write {path}: {_write_problem(path, error)}") from None
        raise


def _write_problem(path: Path, error: OSError) -> str:
    # mkdir under a file says "File exists" or "Not a directory", which reads as if ``path``
    # itself were the trouble
    blocker = next((p for p in path.parents if p.is_file()), None)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    return error.strerror or str(error)


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` streamed into the file: no copy of the arrays is held in memory."""
    with atomic_file(path) as handle:
        np.savez(handle, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, which must hold only plain (unpickled) arrays."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except EOFError:  # np.load of an empty file; left alone, click takes it for Ctrl-D
        raise RunError(f"{path} is empty (a damaged or unfinished file)") from None
    except MemoryError:
        raise RunError(f"{path} declares arrays larger than the free memory") from None
    except (OSError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
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
        self.classes = self.path / "classes.json"

    def require(self, *files: Path) -> None:
        if not self.path.is_dir():
            raise RunError(f"{self.path} is not a run directory (make one with `cnnkit train`)")
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise RunError(f"{self.path} has no {', '.join(missing)}; is it a finished run?")

    def read_text(self, path: Path) -> str:
        self.require(path)
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise RunError(f"{path} is not UTF-8 text (byte {error.start}); "
                           "the run directory is damaged") from None
        except OSError as error:
            raise RunError(f"cannot read {path}: {error.strerror or error}") from None

    def read_network(self) -> Network:
        try:
            return parse(self.read_text(self.spec), filename=str(self.spec))
        except SpecError as error:
            where = f":{error.span.line}:{error.span.col}" if error.span else ""
            raise RunError(f"{self.spec}{where}: {error.message}; the run's spec was edited "
                           "or damaged (cnnkit train writes the spec it trained)") from None

    def read_config(self) -> TrainConfig:
        try:
            return TrainConfig.from_json(self.read_text(self.config))
        except ValueError as error:
            raise RunError(f"{self.config}: {error}; the run directory is damaged") from None

    def read_normalization(self, channels: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The per-channel (mean, std) of a run trained with --standardize, checked against
        the network's ``channels``."""
        if not self.normalization.exists():
            return None
        try:
            data = json.loads(self.read_text(self.normalization))
            mean, std = (np.asarray(data[key], np.float64) for key in ("mean", "std"))
        except (ValueError, TypeError, KeyError):
            raise RunError(f"{self.normalization} is damaged: it must be "
                           '{"mean": [...], "std": [...]} with one number per channel') from None
        if mean.ndim != 1 or mean.shape != std.shape or channels not in (None, len(mean)):
            raise RunError(f"{self.normalization} holds {mean.size} means and {std.size} stds"
                           + (f" for a network of {channels} input channel(s)" if channels else
                              ", which should be one list of each, of the same length"))
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise RunError(f"{self.normalization}: every mean must be finite and every std "
                           "positive")
        return mean.astype(np.float32), std.astype(np.float32)

    def write_normalization(self, mean, std) -> None:
        text = json.dumps({"mean": [float(m) for m in mean], "std": [float(s) for s in std]})
        write_atomic(self.normalization, text.encode())

    def read_classes(self, outputs: int) -> tuple[str, ...] | None:
        """The class names the run trained on (None for a run from before classes.json),
        checked: distinct strings, at most one per network output."""
        if not self.classes.exists():
            return None
        try:
            names = json.loads(self.read_text(self.classes))["classes"]
        except (ValueError, TypeError, KeyError):
            names = None
        if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)
                and len(set(names)) == len(names)):
            raise RunError(f"{self.classes} is damaged: it must be "
                           '{"classes": ["name", ...]} with distinct, non-empty names')
        if len(names) > outputs:
            raise RunError(f"{self.classes} names {len(names)} classes, but the network has "
                           f"{outputs} outputs (was the spec edited?)")
        return tuple(names)

    def write_classes(self, names) -> None:
        write_atomic(self.classes, json.dumps({"classes": list(names)}, indent=1).encode())

    def checkpoint_path(self, epoch: int, step: int = 0) -> Path:
        """Where the checkpoint after ``epoch`` epochs and ``step`` more steps goes."""
        return self.checkpoints / (f"epoch-{epoch:03d}"
                                   + (f"-step-{step:06d}" if step else "") + ".npz")

    def checkpoints_in_order(self) -> list[Path]:
        """The checkpoint files, oldest progress first: ordered by (epoch, step), which a
        name sort gets wrong (``epoch-001-step-000027`` sorts before ``epoch-001``)."""
        found = []
        for path in self.checkpoints.glob("epoch-*.npz"):
            match = CHECKPOINT.fullmatch(path.name)
            if match:
                found.append(((int(match.group(1)), int(match.group(2) or 0)), path))
        return [path for _, path in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints_in_order()
        return found[-1] if found else None

    def prune_checkpoints(self, keep: int) -> None:
        for old in self.checkpoints_in_order()[:-keep]:
            old.unlink(missing_ok=True)

    def remove_temp_files(self) -> list[Path]:
        """Deletes what interrupted atomic writes left behind (``.NAME.XXXX.tmp``)."""
        removed = []
        for folder in (self.path, self.checkpoints):
            for path in folder.glob(".*.tmp") if folder.is_dir() else ():
                if TEMP_FILE.fullmatch(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    def read_metrics(self) -> list[dict]:
        """The per-epoch rows of metrics.jsonl; a damaged line is an error naming it."""
        if not self.metrics_jsonl.exists():
            return []
        rows = []
        for number, line in enumerate(self.read_text(self.metrics_jsonl).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not (isinstance(row, dict) and _is_count(row.get("epoch"))
                    and all(_is_number(row.get(key)) for key in ("train_loss", "train_acc"))):
                raise RunError(f"{self.metrics_jsonl}, line {number}, is damaged: each line "
                               'must be an epoch\'s JSON object ({"epoch": 1, "train_loss": '
                               '...}) as cnnkit train writes it')
            rows.append(row)
        return rows

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
        """The arrays of weights_init.npz or weights_final.npz (of an unfinished run, the
        latest checkpoint's model), unchecked: ``TrainedRun.weights`` checks them against
        the network."""
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


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
