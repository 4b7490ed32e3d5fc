"""Add what the service uses beyond the model to a study's model directory.

``background.csv``
    explanation background from :func:`medpredict.explain.make_background`
    (columns shuffled independently, so no row is a real patient);
``conformal.skops``
    a :class:`medpredict.evaluation.conformal.ConformalSets` calibrated on the
    selected model's out-of-fold probabilities;
``fhir-mapping.yaml``
    the FHIR mapping of the model's features (see :mod:`medpredict.serve.fhir`).

The directory is rewritten through :func:`medpredict.registry.save_model`, so the
manifest covers the new files and tampering with them is refused on load.

Examples
--------
>>> from medpredict.spec import parse_spec
>>> from medpredict.study import run_study
>>> spec = parse_spec({"name": "doc-serve", "data": {"dataset": "pima_tr"},
...     "target": "type", "positive_class": "Yes", "models": ["logistic_regression"],
...     "bootstrap": 0, "output_dir": "/tmp/medpredict-doc-serve"})
>>> path = package_for_serving(run_study(spec, quiet=True))
>>> sorted(p.name for p in path.iterdir())  # doctest: +NORMALIZE_WHITESPACE
['MANIFEST.json', 'background.csv', 'conformal.skops', 'metadata.json', 'model.skops']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import skops.io as sio
import yaml

from medpredict.evaluation.conformal import ConformalSets
from medpredict.explain import make_background
from medpredict.registry import (
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    TRUSTED_PREFIXES,
    ArtifactError,
    load_model,
    save_model,
)

BACKGROUND_FILE = "background.csv"
CONFORMAL_FILE = "conformal.skops"
MAPPING_FILE = "fhir-mapping.yaml"


def package_for_serving(
    result: Any,
    mapping: dict[str, Any] | None = None,
    alpha: float = 0.1,
    background_size: int = 100,
) -> Path:
    """Write background, conformal predictor and (optionally) a FHIR mapping.

    Parameters
    ----------
    result : a :class:`medpredict.study.StudyResult` whose model directory was saved.
    mapping : ``{"features": ..., "outcome": ...}`` for this model, or None.
    alpha : conformal miscoverage; sets hold the true outcome >= ``1 - alpha`` of the time.
    background_size : rows in the explanation background.
    """
    if result.model_dir is None:
        raise ValueError("the study result has no saved model directory (run with save=True)")
    loaded = load_model(result.model_dir)
    extra = _existing_extras(loaded.path)
    extra[BACKGROUND_FILE] = (
        make_background(result.cohort.X, background_size).to_csv(index=False).encode()
    )
    conformal = ConformalSets(alpha=alpha).fit(result.best.oof_proba, result.cohort.y)
    extra[CONFORMAL_FILE] = sio.dumps(conformal)
    if mapping is not None:
        extra[MAPPING_FILE] = yaml.safe_dump(mapping, sort_keys=False).encode()
    return save_model(loaded.path, loaded.estimator, loaded.metadata, extra)


def listed_files(directory: Path) -> list[str]:
    """Files the manifest covers (and :func:`medpredict.registry.load_model` verified)."""
    return list(json.loads((Path(directory) / MANIFEST_FILE).read_text())["files"])


def _existing_extras(directory: Path) -> dict[str, bytes]:
    skip = {MODEL_FILE, METADATA_FILE, MANIFEST_FILE}
    return {n: (directory / n).read_bytes() for n in listed_files(directory) if n not in skip}


def load_conformal(directory: Path) -> ConformalSets | None:
    """The conformal predictor of a verified model directory, if its manifest lists one."""
    if CONFORMAL_FILE not in listed_files(directory):
        return None
    path = Path(directory) / CONFORMAL_FILE
    payload = path.read_bytes()
    types = sio.get_untrusted_types(data=payload)
    refused = [t for t in types if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtifactError(f"{path} names types outside the allow-list: {', '.join(refused)}")
    predictor = sio.loads(payload, trusted=types)
    if not isinstance(predictor, ConformalSets):
        raise ArtifactError(f"{path} holds a {type(predictor).__name__}, not ConformalSets")
    return predictor
