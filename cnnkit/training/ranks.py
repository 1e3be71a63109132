"""Ranks: processes that train one network together, each on its own block of every batch.

Data parallelism as docs/data-parallel.md plans it, on CPU processes through MPI: every
rank builds the same model from the seed, cuts every step the same way (shuffling depends
only on the seed and epoch) and makes, augments and runs forward and backward its own
contiguous block of it, each image with the augmentation draws of its row in the whole
batch.  Its logits' gradient is scaled by its share of the batch, so that the gradients
summed over the ranks (one all-reduce per step, ``sum``) are those of the whole batch;
every rank then takes the same optimizer step and the weights stay identical without ever
being sent.  Batch normalization sums its statistics over the ranks (synchronized BN), and
dropout draws the whole batch's mask and keeps its rows: R ranks compute what one process
computes on the whole batch, to rounding (sums added in another order).

``Alone`` is the one-process case the trainer runs by default; ``MpiRanks`` are the
processes mpiexec started (``cnnkit train --launcher mpi``), through mpi4py, which cnnkit
imports only then.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

import numpy

from ..engine import parallel
from .config import LAUNCHERS

ABORT_GRACE = 0.5  # seconds between writing an error and ending the job
# set by the MPI launchers in every process they start: the world's size
WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


class RanksError(Exception):
    """The ranks cannot be set up as asked."""


class Alone:
    """One process with the whole batch."""

    size, rank = 1, 0
    local = 1  # the ranks on this machine, this one included
    rows: slice | None = None  # this rank's rows of the current batch
    total = 0  # the current batch's images, on all ranks together

    def share_of(self, n: int) -> slice:
        """This rank's rows of ``n``: contiguous, sizes differing by at most one."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def block(self, n: int) -> slice:
        """This rank's rows of a training batch of ``n`` (``share_of``), remembered as
        ``rows`` and ``total`` for the layers that need them (dropout)."""
        self.rows, self.total = self.share_of(n), n
        return self.rows

    def sum(self, array, in_place: bool = False):
        """``array`` summed element-wise over the ranks (the array itself when alone), into
        ``array`` itself with ``in_place``."""
        return array

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank."""
        return flag

    def share(self, value):
        """Rank 0's ``value``, on every rank."""
        return value

    def abort(self, code: int) -> None:
        """Ends the other ranks, which would otherwise wait for this one for ever."""


class MpiRanks(Alone):
    """The processes of MPI's world (mpi4py), one rank each."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as error:
            raise RanksError(
                f"--launcher mpi needs mpi4py and an MPI library ({error}): pip install "
                "'cnnkit[mpi]' (mpi4py and MPICH's wheel), then start the ranks with "
                "`mpiexec -n 2 cnnkit train ... --launcher mpi`") from None
        self._mpi = MPI
        self._world = MPI.COMM_WORLD
        self.size, self.rank = self._world.Get_size(), self._world.Get_rank()
        # the ranks on this machine share its cores: each runs its engine, and BLAS, on its
        # share (BLAS on all cores in every rank ran 2 ranks of M1 on 2 cores 3-6x slower)
        self.local = self._world.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        if "CNNKIT_NUM_THREADS" not in os.environ:
            parallel.WORKERS = max(1, parallel.WORKERS // self.local)
            parallel.limit_blas_threads(parallel.WORKERS)

    def sum(self, array, in_place: bool = False):
        if in_place:
            self._world.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)
            return array
        host = numpy.ascontiguousarray(array)
        summed = numpy.empty_like(host)
        self._world.Allreduce(host, summed, op=self._mpi.SUM)
        return summed

    def any(self, flag: bool) -> bool:
        return bool(self._world.allreduce(bool(flag), op=self._mpi.LOR))

    def share(self, value):
        return self._world.bcast(value, root=0)

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE)  # the launcher forwards what was written (else lost at times)
        self._world.Abort(code)


def started_by_mpi() -> int:
    """The number of processes an MPI launcher started this one among (1 if none did)."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def connect(launcher: str = "none", device: str | None = "cpu") -> Alone:
    """The ranks of ``launcher`` (``config.LAUNCHERS``): "none" (this process alone) or
    "mpi", for training on ``device`` ("auto" is the CPU here; alone, any)."""
    if launcher not in LAUNCHERS:
        raise RanksError(f"unknown launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")
    if launcher == "mpi":
        if device not in ("cpu", "auto"):
            raise RanksError("--launcher mpi trains on the CPU (--device cpu): ranks on GPUs "
                             "are planned, not built (docs/data-parallel.md)")
        return MpiRanks()
    return Alone()


def check_alone() -> None:
    """Refuses a `cnnkit train` without --launcher mpi in a process that an MPI launcher
    started among others: each would train the whole run into the same folder.  (The
    Python API leaves that to its caller, who may train one model per rank on purpose.)"""
    world = started_by_mpi()
    if world > 1:
        raise RanksError(f"this process is one of {world} that an MPI launcher started; "
                         "add --launcher mpi so that they train together (alone, each "
                         "would train the whole run into the same folder)")


@contextlib.contextmanager
def ending_all_on_failure(ranks: Alone, trainer=None):
    """Ends every rank when this one fails (the others would wait for it for ever), unless
    the ranks stopped together at a step boundary (``trainer.stopped_together``).  The
    error is written to stderr first, as Python would have (a CLI's exit was reported)."""
    try:
        yield
    except BaseException as error:
        code = getattr(error, "exit_code", None)  # a CLI's exit, already reported
        agreed = code == 0 or trainer is not None and trainer.stopped_together
        if ranks.size > 1 and not agreed:
            if code is None:
                sys.stderr.write(f"rank {ranks.rank}: "
                                 + "".join(traceback.format_exception(error)))
            ranks.abort(code or 1)
        raise
