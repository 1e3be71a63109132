"""benchmarks.revisions imports another revision's cnnkit next to this one's and runs both
on the same network and weights."""

import importlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import common, revisions

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("git") is None or subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0,
    reason="needs the repository's git history")
def test_another_revision_runs_beside_this_one(tmp_path):
    commit, other = revisions.load_revision("HEAD", tmp_path)
    assert other.__name__ == f"cnnkit_{commit}"
    assert Path(other.__file__).is_relative_to(tmp_path)
    path, network = common.load("m1")
    ours, theirs = revisions.pair(path, network, other, batch=2)
    engine = importlib.import_module(f"{other.__name__}.engine")
    assert type(theirs.model) is engine.Model and type(ours.model) is not engine.Model
    np.testing.assert_allclose(theirs.infer(), ours.infer(), rtol=1e-5, atol=1e-6)
    ours(), theirs()  # a training step each
