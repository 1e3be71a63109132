"""Every test runs with its own empty cnnkit cache, so no test can read what another (or a
real user) left in ~/.cache/cnnkit, nor leave anything there."""

import pytest


@pytest.fixture(autouse=True)
def private_data_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(tmp_path_factory.mktemp("cnnkit-cache")))
