"""The model directory's metadata as a typed contract, and one verified load per directory.

Models are fitted on the Wisconsin breast cancer data bundled with scikit-learn (real
data). Metadata files of the first format are written as studies wrote them before
the ``format`` key existed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import medpredict.artifact as artifact
from medpredict.artifact import (
    BACKGROUND_FILE,
    CONFORMAL_FILE,
    MANIFEST_FILE,
    METADATA_FILE,
    ArtifactError,
    _sha256,
    dumps_checked,
    load_model,
    save_model,
)
from medpredict.data.schema import Schema
from medpredict.model_metadata import FORMAT, MetricEstimate, ModelMetadata
from medpredict.predict import predict_frame
from medpredict.serve.models import ServedModel
from medpredict.serve.package import add_fhir_mapping
from medpredict.trust.conformal import ConformalSets
from medpredict.trust.explanations import background_to_json
from medpredict.trust.runtime import CONFORMAL_TYPES, load_trust

COLUMNS = ["mean radius", "mean texture", "mean smoothness", "worst concavity"]


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    X, y = data.data[COLUMNS], data.target.to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    oof = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression()), X, y,
                            method="predict_proba")
    trust = {
        CONFORMAL_FILE: dumps_checked(ConformalSets(alpha=0.1).fit(oof, y), CONFORMAL_TYPES),
        BACKGROUND_FILE: background_to_json(X.head(40)),
    }
    return X, y, model, trust


def _metadata(X: pd.DataFrame) -> ModelMetadata:
    return ModelMetadata(
        name="wisconsin", version="0.1.0", created="2025-01-01T00:00:00+00:00",
        task="binary", target="benign", positive_class="1", classes=["0", "1"],
        model="logistic_regression", data_schema=Schema.infer(X).to_dict(),
        thresholds={"sens 0.9": 0.35},
        metrics={"auroc": {"value": 0.95, "low": 0.93, "high": 0.97},
                 "calibration_slope": {"value": None, "low": None, "high": None,
                                       "not_meaningful": "one class in a fold"}},
        holdouts={"external": {"auroc": {"value": 0.9, "low": 0.85, "high": 0.94}}},
        training_rows=len(X),
        temporal_validation=None,
        failed_candidates={"svm": {"reason": "did not converge", "rows": [3, 7]}},
        training_data_sha256="ab" * 32, intended_use="Triage of biopsies.",
        versions={"numpy": np.__version__},
        spec={"name": "wisconsin", "target": "benign", "id_column": "record",
              "sensitive_attributes": ["site"], "trust": {"conformal_group": None}},
    )


def _rehashed(directory):
    """The directory with its manifest's hashes recomputed (unsigned)."""
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["files"] = {name: _sha256(directory / name) for name in manifest["files"]}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    return directory


def _rewrite_metadata(directory, content: dict) -> None:
    """Replace metadata.json and rehash the manifest, as an older save would have left it."""
    (directory / METADATA_FILE).write_text(json.dumps(content, indent=2))
    _rehashed(directory)


def test_round_trip_keeps_every_field_and_readable_json(cancer, tmp_path):
    X, _, model, _ = cancer
    written = _metadata(X)
    loaded = load_model(save_model(tmp_path / "m", model, written))
    assert loaded.metadata == written
    text = (tmp_path / "m" / METADATA_FILE).read_text()
    on_disk = json.loads(text)
    assert text.startswith('{\n  "format": 2,\n  "name": "wisconsin"')
    assert on_disk == written.to_json_dict()
    assert on_disk["schema"] == Schema.infer(X).to_dict()
    assert Schema.from_dict(on_disk["schema"]).to_dict() == on_disk["schema"]
    assert on_disk["metrics"]["auroc"] == {"value": 0.95, "low": 0.93, "high": 0.97}
    assert on_disk["metrics"]["calibration_slope"]["not_meaningful"] == "one class in a fold"
    meta = loaded.metadata
    assert meta.metrics["auroc"] == MetricEstimate(value=0.95, low=0.93, high=0.97)
    assert meta.failed_candidates["svm"].rows == [3, 7]
    assert meta.role_columns == ["record", "benign", "site"] and meta.conformal_group is None


def test_a_plain_mapping_is_validated_with_the_field_named(cancer, tmp_path):
    model = cancer[2]
    assert load_model(save_model(tmp_path / "ok", model, {"name": "w"})).metadata.name == "w"
    with pytest.raises(ArtifactError, match=r"cannot save: metadata: thresholds\.sens90: "
                                            r"Input should be a valid number"):
        save_model(tmp_path / "bad", model, {"name": "w", "thresholds": {"sens90": "high"}})
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ArtifactError, match=r"metadata: name: Field required"):
        save_model(tmp_path / "nameless", model, {"task": "binary"})


def test_tabular_directory_of_format_1_loads_and_predicts(cancer, tmp_path):
    """An old study's metadata: no format, a numeric event label, optional keys absent."""
    X, _, model, _ = cancer
    directory = save_model(tmp_path / "old", model, {"name": "wisconsin"})
    old = {
        "name": "wisconsin", "version": "0.0.9", "created": "2024-03-01T10:00:00+00:00",
        "task": "binary", "target": "benign", "positive_class": 1, "classes": ["0", "1"],
        "model": "logistic_regression", "schema": Schema.infer(X).to_dict(),
        "metrics": {"auroc": {"value": 0.95, "low": 0.93, "high": 0.97}},
        "training_rows": len(X), "versions": {"numpy": "1.26.4"},
        "spec": {"name": "wisconsin", "target": "benign", "id_column": "record",
                 "validation": {"folds": 5}, "trust": {"conformal_alpha": 0.1}},
    }
    _rewrite_metadata(directory, old)
    loaded = load_model(directory)
    meta = loaded.metadata
    assert meta.format == FORMAT and meta.positive_class == "1"
    assert meta.thresholds == {} and meta.holdouts == {} and meta.temporal_validation is None
    assert meta.spec["validation"] == {"folds": 5}
    table = X.head(5).assign(record=[f"b{i}" for i in range(5)])
    scored = predict_frame(loaded, table)
    assert scored["record"].tolist() == table["record"].tolist()
    np.testing.assert_allclose(scored["risk"], model.predict_proba(X.head(5))[:, 1])


def test_image_directory_of_format_1_loads(cancer, tmp_path):
    """What image studies wrote before: class names, validation metrics, an image schema."""
    X, y, _, _ = cancer
    pixels = LogisticRegression(max_iter=1000).fit(X.to_numpy(), y)  # no column names
    directory = save_model(tmp_path / "image", pixels, {"name": "x"})
    old = {
        "name": "BreastMNIST", "version": "0.0.9", "created": "2024-03-01T10:00:00+00:00",
        "task": "binary", "target": "label", "positive_class": "0", "classes": ["0", "1"],
        "class_names": {"0": "malignant", "1": "normal, benign"}, "model": "probe",
        "schema": {"features": [{"name": "image", "kind": "image", "dtype": "uint8",
                                 "shape": [28, 28]}]},
        "metrics": {"auroc": {"value": 0.88, "low": 0.81, "high": 0.94}},
        "validation_metrics": {"auroc": {"value": 0.9, "low": 0.84, "high": 0.95}},
        "thresholds": {"sens90": 0.31}, "training_rows": 546,
        "training_data_sha256": "cd" * 32, "versions": {"torch": "2.3.0"},
    }
    _rewrite_metadata(directory, old)
    meta = load_model(directory).metadata
    assert meta.format == FORMAT and meta.class_names["0"] == "malignant"
    assert meta.validation_metrics["auroc"].value == 0.9
    assert meta.data_schema["features"][0]["shape"] == [28, 28]
    assert meta.feature_names == ["image"]
    assert meta.spec is None and meta.role_columns == [] and meta.conformal_group is None
    assert meta.to_json_dict() == {**old, "format": FORMAT}


def test_a_newer_format_is_refused_by_name(cancer, tmp_path):
    X, _, model, _ = cancer
    directory = save_model(tmp_path / "m", model, _metadata(X))
    _rewrite_metadata(directory, {**_metadata(X).to_json_dict(), "format": FORMAT + 1})
    with pytest.raises(ArtifactError, match=rf"metadata\.json: format {FORMAT + 1} is newer "
                                            rf"than this medpredict reads \(up to {FORMAT}\)"):
        load_model(directory)


def test_wrong_types_in_stored_metadata_name_the_field(cancer, tmp_path):
    X, _, model, _ = cancer
    directory = save_model(tmp_path / "m", model, _metadata(X))
    broken = _metadata(X).to_json_dict()
    broken["spec"]["sensitive_attributes"] = "site"
    _rewrite_metadata(directory, broken)
    with pytest.raises(ArtifactError, match=r"metadata\.json: spec: sensitive_attributes: "
                                            "Input should be a valid list"):
        load_model(directory)


def test_unknown_keys_from_newer_writers_are_kept(cancer, tmp_path):
    X, _, model, _ = cancer
    directory = save_model(tmp_path / "m", model, _metadata(X))
    newer = _metadata(X).to_json_dict()
    newer["decision_curve"] = {"net_benefit": [0.1, 0.2]}
    newer["metrics"]["auroc"]["method"] = "percentile"
    newer["spec"]["trust"]["shift_monitor"] = True
    _rewrite_metadata(directory, newer)
    loaded = load_model(directory)
    assert loaded.metadata.model_extra == {"decision_curve": {"net_benefit": [0.1, 0.2]}}
    mapping = {"features": {c: {"system": "http://loinc.org", "code": str(i)}
                            for i, c in enumerate(COLUMNS)}}
    add_fhir_mapping(directory, mapping)  # rewrites the directory from the loaded metadata
    assert json.loads((directory / METADATA_FILE).read_text()) == newer


def test_trust_files_load_through_the_checked_loader(cancer, tmp_path):
    X, _, model, trust = cancer
    directory = save_model(tmp_path / "m", model, _metadata(X), trust)
    loaded = load_model(directory)
    conformal, background = load_trust(loaded)
    assert conformal.alpha == 0.1 and background.shape == (40, len(COLUMNS))
    payload = bytearray(trust[CONFORMAL_FILE])
    payload[len(payload) // 2] ^= 0xFF
    (directory / CONFORMAL_FILE).write_bytes(bytes(payload))  # changed after the load
    with pytest.raises(ArtifactError, match=r"conformal\.skops has been modified"):
        load_trust(loaded)
    (directory / CONFORMAL_FILE).write_bytes(dumps_checked(model))
    reloaded = load_model(_rehashed(directory))
    with pytest.raises(ArtifactError, match=r"conformal\.skops names types outside the "
                                            r"allow-list: .*sklearn\.pipeline\.Pipeline"):
        load_trust(reloaded)


def test_the_manifest_is_verified_once_per_load(cancer, tmp_path, monkeypatch):
    X, _, model, trust = cancer
    directory = save_model(tmp_path / "m", model, _metadata(X), trust)
    calls = {"manifest": 0, "hashed": 0}
    read_manifest, sha256 = artifact._read_manifest, artifact._sha256

    def counted_manifest(path, *required):
        calls["manifest"] += 1
        return read_manifest(path, *required)

    def counted_sha256(path):
        calls["hashed"] += 1
        return sha256(path)

    monkeypatch.setattr(artifact, "_read_manifest", counted_manifest)
    monkeypatch.setattr(artifact, "_sha256", counted_sha256)
    loaded = load_model(directory)
    load_trust(loaded)
    assert calls == {"manifest": 1, "hashed": 4}  # model, metadata and the two trust files
    calls.update(manifest=0, hashed=0)
    served = ServedModel.from_dir(directory, top_k=0)
    assert served.conformal is not None and served.conformal_level == 0.9
    assert calls == {"manifest": 1, "hashed": 4}
