"""Model directories that never execute code on load and refuse tampered files.

A model directory holds

``model.skops``
    the fitted estimator, serialised with skops (no pickle);
``metadata.json``
    the resolved study spec, data schema, metrics, training-data hash, library versions;
any extra files
    e.g. network weights as safetensors, a model card;
``MANIFEST.json``
    the sha256 of every file above. :func:`load_model` checks it before reading
    anything else and refuses a directory whose files do not match.

Only types from an allow-list of module prefixes are instantiated when loading; a
file that names any other type is refused, so a crafted file cannot run code.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
>>> path = save_model(tempfile.mkdtemp(), model, {"name": "demo"})
>>> load_model(path).metadata["name"]
'demo'
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "MANIFEST.json"
TRUSTED_PREFIXES = (
    "builtins.",
    "collections.",
    "numpy.",
    "scipy.",
    "sklearn.",
    "lightgbm.",
    "medpredict.",
    "crepes.",
    "fairlearn.",
    "pandas.",
)


class ArtifactError(RuntimeError):
    """A model directory is incomplete, tampered with, or names untrusted types."""


@dataclass
class LoadedModel:
    """A fitted estimator with the metadata it was saved with."""

    estimator: Any
    metadata: dict[str, Any]
    path: Path

    @property
    def sha256(self) -> str:
        """Hash of the serialised estimator, identifying this exact model."""
        return json.loads((self.path / MANIFEST_FILE).read_text())["files"][MODEL_FILE]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(
    directory: str | Path,
    estimator: Any,
    metadata: dict[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``estimator``, ``metadata`` and ``extra_files`` with a sha256 manifest.

    Parameters
    ----------
    directory : folder to create or overwrite.
    estimator : fitted scikit-learn compatible estimator.
    metadata : JSON-serialisable description (spec, schema, metrics, versions).
    extra_files : further files by name, e.g. ``{"weights.safetensors": ...}``.

    Returns
    -------
    Path of the model directory.
    """
    sio = skops_io()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(sio.dumps(estimator))
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
    names = [MODEL_FILE, METADATA_FILE]
    for name, content in (extra_files or {}).items():
        if Path(name).name != name or name == MANIFEST_FILE:
            raise ValueError(f"extra file name {name!r} must be a plain file name")
        (directory / name).write_bytes(content)
        names.append(name)
    manifest = {"algorithm": "sha256", "files": {n: _sha256(directory / n) for n in names}}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return directory


def skops_io() -> Any:
    """``skops.io``, imported without its import-time walk of scikit-learn.

    On import, skops builds its default list of trusted types by importing every
    scikit-learn module (and through them torch): a second or more, on every
    ``medpredict predict``. medpredict never uses that default list: :func:`load_model`
    checks each type in a file against its own allow-list and passes exactly those as
    trusted. So the walk is skipped while skops is imported.
    """
    if "skops.io" not in sys.modules:
        import sklearn.utils

        walk = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda type_filter=None: []
        try:
            import skops.io  # noqa: F401
        finally:
            sklearn.utils.all_estimators = walk
    return sys.modules["skops.io"]


def verify_model(directory: str | Path) -> dict[str, str]:
    """Check every file against the manifest; return the manifest's hashes.

    Raises
    ------
    ArtifactError
        If the manifest or a listed file is missing or any hash differs.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{directory} is not a model directory: {MANIFEST_FILE} is missing")
    files = json.loads(manifest_path.read_text()).get("files", {})
    if MODEL_FILE not in files:
        raise ArtifactError(f"{manifest_path} does not list {MODEL_FILE}")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path} is listed in the manifest but missing")
        actual = _sha256(path)
        if actual != expected:
            raise ArtifactError(
                f"{path} has been modified since it was saved "
                f"(sha256 {actual[:12]}…, manifest says {expected[:12]}…); refusing to load it"
            )
    return files


def load_model(directory: str | Path) -> LoadedModel:
    """Verify and load a model directory written by :func:`save_model`."""
    sio = skops_io()
    directory = Path(directory)
    verify_model(directory)
    payload = (directory / MODEL_FILE).read_bytes()
    types = sio.get_untrusted_types(data=payload)
    refused = [t for t in types if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtifactError(
            f"{directory / MODEL_FILE} names types outside the allow-list: {', '.join(refused)}"
        )
    estimator = sio.loads(payload, trusted=types)
    metadata = json.loads((directory / METADATA_FILE).read_text())
    return LoadedModel(estimator=estimator, metadata=metadata, path=directory)
