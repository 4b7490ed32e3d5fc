"""Model directories: round trip, tamper detection, refusal of untrusted types."""

from __future__ import annotations

import importlib
import io
import json
import pickle
import re
import subprocess
import sys
import zipfile
from fractions import Fraction

import numpy as np
import pytest
import skops.io as sio
from typer.testing import CliRunner

from medpredict.artifact import (
    KEY_ENV,
    KEY_FILE_ENV,
    MANIFEST_FILE,
    METADATA_FILE,
    ArtifactError,
    SigningKey,
    _sha256,
    load_model,
    save_model,
    sign_model,
    verify_model,
)
from medpredict.cli import app
from medpredict.data.datasets import load_dataset
from medpredict.predict import predict_frame
from medpredict.safe_skops import checked_types
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.trust.runtime import annotate_predictions
from medpredict.trusted_types import TRUSTED_TYPES


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
    assert metadata.positive_class == "Yes" and metadata.model == study.best_name
    assert [f["name"] for f in metadata.data_schema["features"]] == list(new.columns)
    assert metadata.feature_names == list(new.columns)
    assert metadata.training_data_sha256 == study.data_sha256
    assert {"numpy", "scikit-learn", "skops"} <= set(metadata.versions)
    assert len(loaded.sha256) == 64


def test_study_metadata_is_typed_and_stored_as_readable_json(study):
    on_disk = json.loads((study.model_dir / METADATA_FILE).read_text())
    assert on_disk["format"] == 2 and set(on_disk) == {
        "format", "name", "version", "created", "task", "target", "positive_class",
        "classes", "model", "schema", "thresholds", "metrics", "holdouts", "training_rows",
        "temporal_validation", "failed_candidates", "training_data_sha256", "intended_use",
        "versions", "spec",
    }
    loaded = load_model(study.model_dir)
    assert loaded.metadata.to_json_dict() == on_disk
    assert on_disk["spec"] == study.spec.model_dump(mode="json")
    assert loaded.metadata.role_columns == ["type"]
    assert loaded.metadata.metrics["auroc"].to_dict() == study.best.metrics["auroc"].to_dict()


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


# --- Attacks on the model file, the manifest and the schema --------------------------

DANGEROUS = (
    "builtins.exec", "builtins.eval", "builtins.getattr", "builtins.__import__",
    "os.system", "subprocess.Popen", "subprocess.run", "numpy.load", "pandas.read_pickle",
)


def _copy(model_dir, target):
    target.mkdir()
    for f in model_dir.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def _inject(payload: bytes, dotted: str, argument: str) -> bytes:
    """The skops file with one more attribute: a call of ``dotted`` on ``argument``."""
    module, name = dotted.rsplit(".", 1)
    source = zipfile.ZipFile(io.BytesIO(payload))
    schema = json.loads(source.read("schema.json"))
    attrs = schema["content"]
    text = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(argument), "is_json": True, "__id__": 1}
    attrs["content"]["pwn"] = {
        "__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                    "content": [text], "__id__": 2},
        "__id__": 3,
    }
    attrs["key_types"]["content"].append(
        {"__class__": "type", "__module__": "builtins", "__loader__": "TypeNode",
         "content": {"__class__": "str", "__module__": "builtins"}, "__id__": 4}
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as rewritten:
        for item in source.namelist():
            data = json.dumps(schema) if item == "schema.json" else source.read(item)
            rewritten.writestr(item, data)
    return out.getvalue()


def _resign_unkeyed(target):
    """What an attacker without the key can do: recompute every sha256."""
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"] = {name: _sha256(target / name) for name in manifest["files"]}
    manifest.pop("signature", None)
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_resigned_exec_payload_is_refused_everywhere(study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = _copy(study.model_dir, tmp_path / "model")
    code = "open('PWNED', 'w').write('x')"
    payload = _inject((target / "model.skops").read_bytes(), "builtins.exec", code)
    (target / "model.skops").write_bytes(payload)
    _resign_unkeyed(target)
    assert "builtins.exec" in sio.get_untrusted_types(data=payload)  # the attack is well formed
    with pytest.raises(ArtifactError, match=r"outside the allow-list: builtins\.exec"):
        load_model(target)
    runner = CliRunner()
    new = tmp_path / "new.csv"
    load_dataset("pima_te").drop(columns=["type"]).to_csv(new, index=False)
    for args in (["verify", str(target)],
                 ["predict", "--model", str(target), "-i", str(new), "-o", "out.csv"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "builtins.exec" in result.output, result.output
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("dotted", DANGEROUS)
def test_dangerous_callables_are_refused(study, dotted):
    assert dotted not in TRUSTED_TYPES
    payload = _inject((study.model_dir / "model.skops").read_bytes(), dotted, "x")
    with pytest.raises(ArtifactError, match=re.escape(dotted)):
        checked_types(payload, "model.skops")


def test_allow_list_names_exact_existing_types():
    for dotted in TRUSTED_TYPES:
        module, name = dotted.rsplit(".", 1)
        target = getattr(importlib.import_module(module), name)
        assert isinstance(target, type) or dotted == "medpredict.imaging.recipes.flatten_pixels"
        assert not name.startswith("__"), dotted


def test_a_model_that_could_not_be_loaded_is_never_saved(tmp_path):
    with pytest.raises(ArtifactError, match=r"cannot save .*fractions\.Fraction"):
        save_model(tmp_path / "m", {"weights": Fraction(1, 3)}, {"name": "x"})
    assert not (tmp_path / "m").exists()


def test_swapped_model_file_is_refused_by_name(study, tmp_path):
    """A Wisconsin model in a Pima directory: named columns, not a failure per request."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    wisconsin = load_breast_cancer(as_frame=True)
    other = LogisticRegression(max_iter=5000).fit(wisconsin.data, wisconsin.target)
    target = _copy(study.model_dir, tmp_path / "model")
    (target / "model.skops").write_bytes(sio.dumps(other))
    _resign_unkeyed(target)
    with pytest.raises(ArtifactError, match=r"does not match .*needs column\(s\) the schema "
                                            r"lacks: mean radius.*does not use: npreg"):
        load_model(target)


def test_garbage_manifest_and_renamed_pickle_are_named_errors(study, tmp_path):
    runner = CliRunner()
    garbage = _copy(study.model_dir, tmp_path / "garbage")
    (garbage / MANIFEST_FILE).write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(app, ["verify", str(garbage)])
    assert result.exit_code == 2 and "is not a JSON manifest" in result.output
    renamed = _copy(study.model_dir, tmp_path / "renamed")
    (renamed / "model.skops").write_bytes(pickle.dumps({"a": 1}))
    _resign_unkeyed(renamed)
    result = runner.invoke(app, ["verify", str(renamed)])
    assert result.exit_code == 2 and "is not a readable skops file" in result.output


KEY = "k" * 32


def test_signed_model_round_trip_and_which_key_signed(study, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    target = _copy(study.model_dir, tmp_path / "model")
    with pytest.raises(ArtifactError, match="is not signed, and a signing key is configured"):
        load_model(target)
    result = CliRunner().invoke(app, ["sign", str(target)])
    assert result.exit_code == 0, result.output
    key_id = SigningKey(KEY.encode()).key_id
    assert f"signature valid (key id {key_id})" in result.output
    assert load_model(target, require_signature=True).verification.signature_checked
    monkeypatch.delenv(KEY_ENV)
    assert "signature not checked" in verify_model(target).describe()
    with pytest.raises(ArtifactError, match="no signing key is configured"):
        load_model(target, require_signature=True)


def test_rehashed_signed_manifest_is_refused(study, tmp_path, monkeypatch):
    """Editing a signed directory and recomputing its hashes without the key fails."""
    monkeypatch.setenv(KEY_ENV, KEY)
    target = _copy(study.model_dir, tmp_path / "model")
    sign_model(target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["thresholds"] = {"sens 0.9": 0.99}
    (target / "metadata.json").write_text(json.dumps(metadata))
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"]["metadata.json"] = _sha256(target / "metadata.json")
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_model(target)
    _resign_unkeyed(target)  # strip the signature instead
    with pytest.raises(ArtifactError, match="is not signed"):
        load_model(target)
    tampered = _copy(study.model_dir, tmp_path / "tampered")
    payload = bytearray((tampered / "model.skops").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (tampered / "model.skops").write_bytes(bytes(payload))
    with pytest.raises(ArtifactError, match="has been modified"):
        sign_model(tampered)
    other = _copy(study.model_dir, tmp_path / "other")
    monkeypatch.setenv(KEY_ENV, "another key of enough length")
    sign_model(other)
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(ArtifactError, match="was signed with key id"):
        load_model(other)


def test_key_file_inside_the_model_directory_is_refused(study, tmp_path, monkeypatch):
    target = _copy(study.model_dir, tmp_path / "model")
    (target / "key").write_text(KEY)
    monkeypatch.setenv(KEY_FILE_ENV, str(target / "key"))
    with pytest.raises(ArtifactError, match="signing key file lies inside"):
        load_model(target)


def test_production_service_refuses_unsigned_models(study, tmp_path, monkeypatch):
    from medpredict.serve.config import ServeSettings
    from medpredict.serve.models import ModelStore

    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = ServeSettings(production=True, keys_file=tmp_path / "keys.json")
    with pytest.raises(ArtifactError, match="signed models are required"):
        ModelStore([study.model_dir], settings)
    monkeypatch.setenv(KEY_ENV, KEY)
    target = _copy(study.model_dir, tmp_path / "model")
    sign_model(target)
    store = ModelStore([target], settings)
    payload = _inject((target / "model.skops").read_bytes(), "builtins.exec", "1")
    (target / "model.skops").write_bytes(payload)
    _resign_unkeyed(target)
    with pytest.raises(ArtifactError):
        store.reload(study.spec.name)


def test_predict_accepts_the_training_tables_own_layout(tmp_path):
    """Id, sensitive-attribute and outcome columns named by the spec pass through."""
    table = load_dataset("pima_tr")
    table.insert(0, "record", [f"p{i}" for i in range(len(table))])
    table["age_group"] = np.where(table["age"] >= 30, "30+", "<30")
    table.to_csv(tmp_path / "pima.csv", index=False)
    spec = parse_spec({
        "name": "pima-roles", "data": {"path": str(tmp_path / "pima.csv")}, "target": "type",
        "positive_class": "Yes", "id_column": "record", "sensitive_attributes": ["age_group"],
        "models": ["logistic_regression"], "bootstrap": 20, "output_dir": str(tmp_path / "run"),
    })
    loaded = load_model(run_study(spec, quiet=True).model_dir)
    scored = predict_frame(loaded, table, keep=["record"])
    assert list(scored.columns[:3]) == ["record", "type", "age_group"]
    assert scored["record"].tolist() == table["record"].tolist()
    assert scored["risk"].between(0, 1).all() and len(scored) == len(table)
    annotated = annotate_predictions(loaded, table, keep=["record"])
    assert len(annotated) == len(table) and "type" not in annotated.columns


def test_serving_imports_neither_the_study_nor_the_plotting_stack():
    """Loading the service, and with it the trust layer's runtime, stays light."""
    code = (
        "import sys, medpredict.serve.app\n"
        "heavy = ('fairlearn', 'matplotlib', 'medpredict.trust.assess', 'medpredict.study')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "", f"medpredict.serve.app imported {run.stdout.strip()}"
