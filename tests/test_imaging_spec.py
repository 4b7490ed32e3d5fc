"""Images in a study spec: a column of ``.npz`` image references run by the study runner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import medpredict.imaging.models  # noqa: F401  (registers the image models and encoder)
from medpredict.artifact import load_model
from medpredict.settings import require_data
from medpredict.spec import parse_spec
from medpredict.study import run_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_study_spec_with_image_column(tmp_path):
    """60 real BreastMNIST training images referenced from a CSV; malignant is the event."""
    path = require_data("images/breastmnist_28.npz")
    labels = np.load(path)["train_labels"].reshape(-1)[:60]
    table = pd.DataFrame({
        "image": [f"{path}#train_images/{i}" for i in range(60)],
        "malignant": np.where(labels == 0, "yes", "no"),
    })
    table.to_csv(tmp_path / "images.csv", index=False)
    spec = parse_spec({
        "name": "breast-images", "data": {"path": str(tmp_path / "images.csv")},
        "target": "malignant", "positive_class": "yes", "features": {"image": "image"},
        "models": ["logistic_regression", {"name": "image_cnn", "params": {"max_epochs": 2}}],
        "validation": {"folds": 2}, "bootstrap": 50, "output_dir": str(tmp_path / "run"),
        "trust": {"learning_curve": False, "explain_rows": 4},
    })
    result = run_study(spec, quiet=True)
    assert set(result.candidates) == {"logistic_regression", "image_cnn"}
    assert all(np.isfinite(c.oof_proba).all() for c in result.candidates.values())
    loaded = load_model(tmp_path / "run" / "model")
    assert loaded.estimator.predict_proba(table[["image"]].iloc[:4]).shape == (4, 2)
