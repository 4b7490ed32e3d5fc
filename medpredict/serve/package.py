"""Give a saved model directory the FHIR mapping the service needs for FHIR and CDS Hooks.

A study already stores what the rest of the service uses beside the model: the
trust layer's conformal predictor (``conformal.skops``) and explanation background
(``explainer_background.json``). The FHIR mapping depends on the site's coding, so
it is added afterwards; the directory is rewritten through
:func:`medpredict.artifact.save_model`, so the manifest covers the mapping and a
changed mapping is refused on load.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> from medpredict.artifact import save_model
>>> path = save_model(tempfile.mkdtemp(), LogisticRegression().fit([[0], [1]], [0, 1]),
...                   {"name": "demo"})
>>> mapping = {"features": {"x0": {"system": "http://loinc.org", "code": "39156-5"}}}
>>> sorted(listed_files(add_fhir_mapping(path, mapping)))
['MANIFEST.json', 'fhir-mapping.yaml', 'metadata.json', 'model.skops']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from medpredict.artifact import (
    MANIFEST_FILE,
    MAPPING_FILE,
    METADATA_FILE,
    MODEL_FILE,
    load_model,
    save_model,
)


def listed_files(directory: str | Path) -> list[str]:
    """Files the manifest covers (and :func:`medpredict.artifact.load_model` verifies).

    For a loaded model, ``loaded.verification.files`` holds them without reading the
    manifest again.
    """
    manifest = json.loads((Path(directory) / MANIFEST_FILE).read_text())
    return sorted([*manifest["files"], MANIFEST_FILE])


def add_fhir_mapping(directory: str | Path, mapping: dict[str, Any]) -> Path:
    """Store ``mapping`` (``{"features": ..., "outcome": ...}``) in a model directory.

    The directory is verified first; its other files are kept as verified.
    """
    loaded = load_model(directory)
    replaced = {MODEL_FILE, METADATA_FILE, MAPPING_FILE}
    extra = {
        name: loaded.read_file(name)
        for name in loaded.verification.files
        if name not in replaced
    }
    extra[MAPPING_FILE] = yaml.safe_dump(mapping, sort_keys=False).encode()
    return save_model(loaded.path, loaded.estimator, loaded.metadata, extra)
