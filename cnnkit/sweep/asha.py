"""ASHA, asynchronous successive halving (Li et al., 2020), for sweeps run without Ray: the
rule of Ray Tune's ASHAScheduler, so that `--early-stop asha` means the same either way.

Rungs sit at ``grace * reduction**k`` epochs, below the last epoch.  A trial that reaches
a rung goes on only if its score is at least the ``1 - 1/reduction`` quantile (with 2: the
median) of the scores the trials before it had there; the first trial at a rung always
goes on.  No trial waits for another, so the decisions depend on the order in which trials
reach a rung: run one after another, the plan's order.
"""

from __future__ import annotations

import threading

GRACE_EPOCHS = 1
REDUCTION = 2  # sweeps are a few epochs long: halve rather than keep a quarter


class Asha:
    def __init__(self, epochs: int, grace: int = GRACE_EPOCHS, reduction: int = REDUCTION):
        self.reduction = reduction
        self.rungs: dict[int, dict[str, float]] = {}  # epoch -> trial -> score
        milestone = grace
        while milestone < epochs:
            self.rungs[milestone] = {}
            milestone *= reduction
        self._lock = threading.Lock()  # a process pool's trials ask through one manager

    def should_stop(self, trial: str, epoch: int, score: float) -> bool:
        """Records ``trial``'s score (higher is better) after ``epoch`` epochs and says
        whether the trial falls below its rung's cutoff."""
        import numpy as np

        with self._lock:
            recorded = self.rungs.get(epoch)
            if recorded is None or trial in recorded:
                return False
            cutoff = (np.percentile(list(recorded.values()), 100 * (1 - 1 / self.reduction))
                      if recorded else None)
            recorded[trial] = score
            return cutoff is not None and bool(score < cutoff)
