"""Shared test settings: real reference data from MEDPREDICT_DATA_DIR, quiet fast studies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MEDPREDICT_DATA_DIR", str((REPO.parent / "shared" / "data").resolve()))
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
