"""``medpredict image-study`` on real BreastMNIST images written as PNG files with labels CSVs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medpredict.artifact import load_model
from medpredict.cli import app
from medpredict.imaging.cohort import load_medmnist
from medpredict.imaging.recipes import RECIPES, make_candidates
from medpredict.models import make_model
from medpredict.settings import require_data
from medpredict.spec import load_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_split(folder, cohort, name):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, image in enumerate(cohort.images):
        paths.append(f"{name}_{i}.png")
        Image.fromarray(image).save(folder / paths[-1])
    frame = pd.DataFrame({"path": paths, "label": cohort.labels,
                          "patient_id": [f"{name}{i}" for i in range(len(paths))],
                          # synthetic attribute (BreastMNIST has none) for the fairness audit
                          "site": np.where(np.arange(len(paths)) % 2, "A", "B")})
    frame.to_csv(folder / f"{name}.csv", index=False)
    return folder / f"{name}.csv"


def test_image_study_command_on_png_folders(tmp_path):
    data = load_medmnist(require_data("images/breastmnist_28.npz"))
    csvs = {
        name: _write_split(tmp_path / "images", data[name].subset(range(n)), name)
        for name, n in (("train", 60), ("val", 30), ("test", 30))
    }
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "image-study", "--train-csv", str(csvs["train"]), "--val-csv", str(csvs["val"]),
        "--test-csv", str(csvs["test"]), "--model", "lightgbm_pixels", "--model", "probe",
        "--positive-label", "0", "--sensitive", "site", "--bootstrap", "50", "--out", str(out),
        "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "validation AUROC" in result.output and "test AUROC of" in result.output
    assert f"report for out: {(out / 'report.html').resolve()}" in result.output.replace("\n", "")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["candidates"]) == {"lightgbm_pixels", "probe"}
    assert metrics["holdouts"]["test"]["rows"] == 30
    assert (out / "model" / "MANIFEST.json").is_file()
    model = load_model(out / "model")
    assert model.metadata.positive_class == "0" and model.metadata.training_rows == 90
    assert model.has_file("conformal.skops") and model.has_file("model_card.json")

    # the written spec reruns the same study with `medpredict run`
    spec = load_spec(out / "study.yaml")
    assert spec.validation.scheme == "fixed" and spec.models == ["lightgbm_pixels", "probe"]
    table = pd.read_csv(out / "images.csv")
    assert table["split"].value_counts().to_dict() == {"train": 60, "validation": 30, "test": 30}

    # the fairness audit runs on the validation images' predictions
    card = json.loads((out / "model" / "model_card.json").read_text())
    assert "site" in json.dumps(card["items"]["fairness"])
    assert "Fairness" in (out / "report.html").read_text()


def test_image_study_command_names_bad_input(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["image-study", "--model", "resnet"])
    assert bad.exit_code != 0 and "unknown image model(s) ['resnet']" in bad.output
    missing = runner.invoke(app, ["image-study", "--train-csv", str(tmp_path / "x.csv")])
    assert missing.exit_code != 0 and "--test-csv" in missing.output


def test_image_study_refuses_a_patient_in_two_splits(tmp_path):
    data = load_medmnist(require_data("images/breastmnist_28.npz"))
    csvs = {
        name: _write_split(tmp_path / "images", data[name].subset(range(n)), name)
        for name, n in (("train", 80), ("test", 30))
    }
    test = pd.read_csv(csvs["test"])
    test.loc[:1, "patient_id"] = ["train3", "train7"]
    test.to_csv(csvs["test"], index=False)
    result = CliRunner().invoke(app, [
        "image-study", "--train-csv", str(csvs["train"]), "--test-csv", str(csvs["test"]),
        "--model", "lightgbm_pixels", "--bootstrap", "20", "--out", str(tmp_path / "out"),
    ])
    assert result.exit_code == 2
    assert "patient(s) 'train3'" in result.output and "more than one split" in result.output


def test_every_recipe_builds_an_unfitted_estimator():
    models = make_candidates(list(RECIPES), seed=4)
    assert set(models) == set(RECIPES)
    assert all(not hasattr(m, "classes_") for m in models.values())
    assert models["finetune"].random_state == 4 and models["finetune"].image_size == 96
    pixels = models["lightgbm_pixels"].fit(np.zeros((6, 4, 4), np.uint8), [0, 1] * 3)
    assert pixels.predict_proba(np.zeros((2, 4, 4), np.uint8)).shape == (2, 2)


def test_registered_recipes_keep_the_recipe_defaults_and_seed():
    direct = make_candidates(list(RECIPES), seed=4)
    for name, estimator in direct.items():
        registered = make_model(name, seed=4)
        assert registered.steps[0][0] == "load"
        inner = registered[1:] if len(registered.steps) > 2 else registered.steps[1][1]
        assert repr(inner.get_params()) == repr(estimator.get_params()), name
    tuned = make_model("cnn", seed=4, max_epochs=3, class_weight="balanced")
    assert tuned.named_steps["model"].max_epochs == 3
    assert tuned.named_steps["model"].class_weight == "balanced"
