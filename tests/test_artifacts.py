"""Model directories: round trip, tamper detection, refusal of untrusted types."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import skops.io as sio

from medpredict.data.datasets import load_dataset
from medpredict.predict import predict_frame
from medpredict.registry import MANIFEST_FILE, ArtifactError, _sha256, load_model, verify_model
from medpredict.spec import parse_spec
from medpredict.study import run_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    spec = parse_spec(
        {
            "name": "pima-artifact",
            "data": {"dataset": "pima_tr"},
            "target": "type",
            "positive_class": "Yes",
            "models": ["logistic_regression", "lightgbm"],
            "bootstrap": 50,
            "output_dir": str(tmp_path_factory.mktemp("artifact")),
        }
    )
    return run_study(spec, quiet=True)


def test_round_trip_gives_identical_predictions(study):
    loaded = load_model(study.model_dir)
    new = load_dataset("pima_te").drop(columns=["type"])
    expected = study.final_model.predict_proba(new)[:, 1]
    np.testing.assert_array_equal(predict_frame(loaded, new)["risk"].to_numpy(), expected)
    metadata = loaded.metadata
    assert metadata["positive_class"] == "Yes" and metadata["model"] == study.best_name
    assert [f["name"] for f in metadata["schema"]["features"]] == list(new.columns)
    assert metadata["training_data_sha256"] == study.data_sha256
    assert {"numpy", "scikit-learn", "skops"} <= set(metadata["versions"])
    assert len(loaded.sha256) == 64


def test_tampered_model_file_is_refused(study, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    for f in study.model_dir.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    payload = bytearray((target / "model.skops").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (target / "model.skops").write_bytes(bytes(payload))
    with pytest.raises(ArtifactError, match=r"model\.skops has been modified since it was saved"):
        load_model(target)


def test_tampered_metadata_is_refused(study, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    for f in study.model_dir.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["thresholds"] = {"sens 0.9": 0.99}
    (target / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match=r"metadata\.json has been modified"):
        verify_model(target)


def test_untrusted_types_are_refused_even_with_a_matching_manifest(study, tmp_path):
    """An attacker who also rewrites the manifest still cannot make us build foreign types."""
    target = tmp_path / "model"
    target.mkdir()
    for f in study.model_dir.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    (target / "model.skops").write_bytes(sio.dumps({"payload": Fraction(1, 3)}))
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"]["model.skops"] = _sha256(target / "model.skops")
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"outside the allow-list: fractions\.Fraction"):
        load_model(target)


def test_missing_manifest_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match=r"MANIFEST\.json is missing"):
        load_model(tmp_path)
