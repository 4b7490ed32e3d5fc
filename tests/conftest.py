"""Shared test settings: real reference data (``../shared/data`` or fetched), quiet studies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("MEDPREDICT_DATA_DIR", str(SHARED_DATA.resolve()))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def pima_spec(tmp_path: Path) -> dict:
    """A fast Pima study (two models, few bootstrap resamples) writing under tmp_path."""
    return {
        "name": "pima-test",
        "data": {"dataset": "pima_tr"},
        "target": "type",
        "positive_class": "Yes",
        "models": ["logistic_regression", "lightgbm"],
        "bootstrap": 100,
        "output_dir": str(tmp_path / "run"),
    }


@pytest.fixture
def one_torch_thread():
    """Tiny networks run fastest on one thread (and do not spin on a shared CPU)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
