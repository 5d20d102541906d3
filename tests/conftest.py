"""Shared fixtures: the quick twin (generated once under data/raw/twin/, as the notebooks use it)."""
from __future__ import annotations

import pytest

from study import paths


@pytest.fixture(scope="session")
def quick_source():
    from study.churn.data import resolve_source

    return resolve_source(None, scale="quick", seed=2017)


@pytest.fixture(scope="session")
def shared_kkbox():
    sample = paths.SHARED_KKBOX / "processed_sample.csv"
    if not sample.is_file():
        pytest.skip(f"../shared is absent: {sample} not found (real KKBOX sample needed)")
    return paths.SHARED_KKBOX
