"""``medpredict image-study`` on real BreastMNIST images written as PNG files with labels CSVs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from medpredict.imaging.cli import image_study
from medpredict.imaging.cohort import load_medmnist
from medpredict.imaging.recipes import RECIPES, make_candidates
from medpredict.settings import require_data

app = typer.Typer()
app.command("image-study")(image_study)
app.command("unused")(lambda: None)  # two commands keep "image-study" as a subcommand


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_split(folder, cohort, name):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, image in enumerate(cohort.images):
        paths.append(f"{name}_{i}.png")
        Image.fromarray(image).save(folder / paths[-1])
    frame = pd.DataFrame({"path": paths, "label": cohort.labels,
                          "patient_id": [f"{name}{i}" for i in range(len(paths))]})
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
        "--positive-label", "0", "--bootstrap", "50", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "test AUROC" in result.output and "report:" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["positive_label"] == "0" and set(metrics["candidates"]) == {
        "lightgbm_pixels", "probe",
    }
    assert (out / "model" / "MANIFEST.json").is_file()


def test_image_study_command_names_bad_input(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["image-study", "--model", "resnet"])
    assert bad.exit_code != 0 and "unknown image model(s) ['resnet']" in bad.output
    missing = runner.invoke(app, ["image-study", "--train-csv", str(tmp_path / "x.csv")])
    assert missing.exit_code != 0 and "--test-csv" in missing.output


def test_every_recipe_builds_an_unfitted_estimator():
    models = make_candidates(list(RECIPES), seed=4)
    assert set(models) == set(RECIPES)
    assert all(not hasattr(m, "classes_") for m in models.values())
    assert models["finetune"].random_state == 4 and models["finetune"].image_size == 96
    pixels = models["lightgbm_pixels"].fit(np.zeros((6, 4, 4), np.uint8), [0, 1] * 3)
    assert pixels.predict_proba(np.zeros((2, 4, 4), np.uint8)).shape == (2, 2)
