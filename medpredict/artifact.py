"""Model directories that never execute code on load and refuse tampered files.

A model directory holds (each name is a constant of this module)

``model.skops`` (:data:`MODEL_FILE`)
    the fitted estimator, serialised with skops (no pickle);
``metadata.json`` (:data:`METADATA_FILE`)
    a :class:`medpredict.model_metadata.ModelMetadata`: the resolved study spec, data
    schema, metrics, training-data hash, library versions;
extra files
    the trust layer's conformal predictor and explanation background
    (:data:`CONFORMAL_FILE`, :data:`BACKGROUND_FILE`), the model card
    (:data:`MODEL_CARD_MD`, :data:`MODEL_CARD_JSON`), network weights as safetensors
    (:data:`WEIGHTS_FILE`), the service's FHIR mapping (:data:`MAPPING_FILE`);
``MANIFEST.json`` (:data:`MANIFEST_FILE`)
    the sha256 of every file above and, when a signing key is configured, an
    HMAC-SHA256 signature of those hashes. :func:`load_model` checks it once, before
    reading anything else, and refuses a directory whose files do not match; every
    later read of a stored file (:meth:`LoadedModel.read_file`,
    :meth:`LoadedModel.load_object`) is checked against the hashes it verified.

Only the exact types in :data:`medpredict.trusted_types.TRUSTED_TYPES` are
constructed when loading; a file that names any other type is refused, so a crafted
file cannot run code. The sha256 manifest alone detects accidental or unsigned
changes; whoever can write the directory can also rewrite the hashes. A signature
closes that gap: the key comes from ``MEDPREDICT_MODEL_KEY`` (the secret itself) or
``MEDPREDICT_MODEL_KEY_FILE`` (a file holding it), never from the model directory.
Once a key is configured, every load requires a valid signature by that key.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
>>> path = save_model(tempfile.mkdtemp(), model, ModelMetadata(name="demo", task="binary"))
>>> loaded = load_model(path)
>>> loaded.metadata.name, loaded.metadata.task, loaded.verification.signed_by is None
('demo', 'binary', True)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medpredict.model_metadata import ModelMetadata
from medpredict.safe_skops import ArtifactError, checked_types, dumps_checked, loads_checked
from medpredict.trusted_types import TRUSTED_TYPES

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "MANIFEST.json"
CONFORMAL_FILE = "conformal.skops"
BACKGROUND_FILE = "explainer_background.json"
MODEL_CARD_MD = "model_card.md"
MODEL_CARD_JSON = "model_card.json"
WEIGHTS_FILE = "weights.safetensors"
MAPPING_FILE = "fhir-mapping.yaml"
KEY_ENV = "MEDPREDICT_MODEL_KEY"
KEY_FILE_ENV = "MEDPREDICT_MODEL_KEY_FILE"
SIGNATURE_ALGORITHM = "hmac-sha256"
_MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class SigningKey:
    """A secret that signs model manifests; only its id is ever written down.

    Examples
    --------
    >>> key = SigningKey(b"a secret of sixteen bytes or more")
    >>> len(key.key_id)
    16
    """

    secret: bytes

    @property
    def key_id(self) -> str:
        """Public identifier of the key (a hash of it), recorded beside each signature."""
        return hashlib.sha256(b"medpredict model key\0" + self.secret).hexdigest()[:16]

    def sign(self, manifest: Mapping[str, Any]) -> str:
        """HMAC-SHA256 of the manifest's hashes."""
        return hmac.new(self.secret, _signed_bytes(manifest), hashlib.sha256).hexdigest()


def signing_key(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The configured model signing key, or None when neither variable is set.

    Raises
    ------
    ArtifactError
        If the key file is unreadable or the key is shorter than 16 bytes.
    """
    environ = os.environ if environ is None else environ
    secret: bytes | None = None
    if environ.get(KEY_ENV):
        secret = environ[KEY_ENV].encode()
    elif environ.get(KEY_FILE_ENV):
        path = Path(environ[KEY_FILE_ENV]).expanduser()
        try:
            secret = path.read_bytes().strip()
        except OSError as err:
            raise ArtifactError(f"{KEY_FILE_ENV}={path} cannot be read: {err}") from None
    if secret is None:
        return None
    if len(secret) < _MIN_KEY_BYTES:
        raise ArtifactError(
            f"the model signing key must be at least {_MIN_KEY_BYTES} bytes "
            f"(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return SigningKey(secret)


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_model` established about a model directory."""

    files: dict[str, str]
    signed_by: str | None
    signature_checked: bool

    def describe(self) -> str:
        """One line for people: files matched and who signed."""
        text = f"{len(self.files)} file(s) match the manifest"
        if self.signed_by is None:
            return text + "; not signed"
        if self.signature_checked:
            return text + f"; signature valid (key id {self.signed_by})"
        return text + (
            f"; signed with key id {self.signed_by}, signature not checked "
            f"({KEY_ENV} is not set)"
        )


@dataclass
class LoadedModel:
    """A fitted estimator, the metadata it was saved with, and what its load verified.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> loaded = load_model(save_model(tempfile.mkdtemp(), model, {"name": "demo"}))
    >>> loaded.has_file(METADATA_FILE), b'"format": 2' in loaded.read_file(METADATA_FILE)
    (True, True)
    """

    estimator: Any
    metadata: ModelMetadata
    path: Path
    verification: Verification

    @property
    def sha256(self) -> str:
        """Hash of the serialised estimator, identifying this exact model."""
        return self.verification.files[MODEL_FILE]

    def has_file(self, name: str) -> bool:
        """Whether the verified manifest lists ``name``."""
        return name in self.verification.files

    def read_file(self, name: str) -> bytes:
        """The bytes of the stored file ``name``, checked against the verified hash.

        Raises
        ------
        ArtifactError
            If the manifest does not list ``name`` or the file changed since the load.
        """
        return _read_verified(self.path, self.verification, name)

    def load_object(self, name: str, allowed: frozenset[str] = TRUSTED_TYPES) -> Any:
        """The object in the stored skops file ``name``, built only from ``allowed`` types.

        Raises
        ------
        ArtifactError
            If the file is unlisted, changed since it was verified, or names another type.
        """
        return _load_stored(self.path, self.verification, name, allowed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _signed_bytes(manifest: Mapping[str, Any]) -> bytes:
    content = {"algorithm": manifest.get("algorithm"), "files": manifest.get("files")}
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def _write_manifest(directory: Path, names: Iterable[str], key: SigningKey | None) -> None:
    manifest: dict[str, Any] = {
        "algorithm": "sha256",
        "files": {n: _sha256(directory / n) for n in names},
    }
    if key is not None:
        manifest["signature"] = {
            "algorithm": SIGNATURE_ALGORITHM,
            "key_id": key.key_id,
            "value": key.sign(manifest),
        }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def save_model(
    directory: str | Path,
    estimator: Any,
    metadata: ModelMetadata | Mapping[str, Any],
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``estimator``, ``metadata`` and ``extra_files`` with a sha256 manifest.

    The manifest is signed when a signing key is configured (see :func:`signing_key`).

    Parameters
    ----------
    directory : folder to create or overwrite.
    estimator : fitted scikit-learn compatible estimator.
    metadata : what the model is (spec, schema, metrics, versions); a mapping is
        validated into a :class:`ModelMetadata`.
    extra_files : further files by name, e.g. ``{WEIGHTS_FILE: ...}``.

    Returns
    -------
    Path of the model directory.

    Raises
    ------
    ArtifactError
        If the estimator names a type that :func:`load_model` would refuse, or a
        metadata field has the wrong type.
    """
    key = signing_key()
    try:
        described = ModelMetadata.read(metadata)
    except ValueError as err:
        raise ArtifactError(f"cannot save: {err}") from None
    payload = dumps_checked(estimator)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(payload)
    text = json.dumps(described.to_json_dict(), indent=2, default=str)
    (directory / METADATA_FILE).write_text(text)
    names = [MODEL_FILE, METADATA_FILE]
    for name, content in (extra_files or {}).items():
        if Path(name).name != name or name == MANIFEST_FILE:
            raise ValueError(f"extra file name {name!r} must be a plain file name")
        (directory / name).write_bytes(content)
        names.append(name)
    _write_manifest(directory, names, key)
    return directory


def sign_model(directory: str | Path, key: SigningKey | None = None) -> Verification:
    """Sign an existing model directory with ``key`` (default: the configured key).

    Its files are checked against the manifest first: tampered files are never signed.
    """
    key = key or signing_key()
    if key is None:
        raise ArtifactError(f"no signing key: set {KEY_ENV} or {KEY_FILE_ENV}")
    directory = Path(directory)
    files = _verify(directory, None, require_signature=False).files
    checked_types((directory / MODEL_FILE).read_bytes(), str(directory / MODEL_FILE))
    _write_manifest(directory, files, key)
    return _verify(directory, key, require_signature=True)


def _read_manifest(directory: Path, required: str | None = MODEL_FILE) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        kind = "a model" if required == MODEL_FILE else "a sealed"
        raise ArtifactError(f"{directory} is not {kind} directory: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path} is not a JSON manifest ({err})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ArtifactError(f"{path} has no 'files' table of file names and sha256 hashes")
    if required is not None and required not in files:
        raise ArtifactError(f"{path} does not list {required}")
    return manifest


def _check_signature(
    manifest: dict[str, Any], path: Path, key: SigningKey | None, required: bool
) -> tuple[str | None, bool]:
    signature = manifest.get("signature")
    if signature is not None and not (
        isinstance(signature, dict)
        and signature.get("algorithm") == SIGNATURE_ALGORITHM
        and all(isinstance(signature.get(k), str) for k in ("key_id", "value"))
    ):
        raise ArtifactError(f"{path} has a malformed signature; refusing to load it")
    signed_by = signature["key_id"] if signature else None
    if key is None:
        if required:
            raise ArtifactError(
                f"signed models are required but no signing key is configured "
                f"(set {KEY_ENV} or {KEY_FILE_ENV})"
            )
        return signed_by, False
    if signature is None:
        raise ArtifactError(
            f"{path} is not signed, and a signing key is configured; "
            "sign it with `medpredict sign` if you trust its files"
        )
    if signed_by != key.key_id:
        raise ArtifactError(
            f"{path} was signed with key id {signed_by}, not the configured key "
            f"{key.key_id}; refusing to load it"
        )
    if not hmac.compare_digest(signature["value"], key.sign(manifest)):
        raise ArtifactError(
            f"{path}: the signature does not match its hashes (the manifest was rewritten "
            "after signing); refusing to load it"
        )
    return signed_by, True


def _key_inside(directory: Path) -> bool:
    configured = os.environ.get(KEY_FILE_ENV)
    if not configured or os.environ.get(KEY_ENV):
        return False
    return Path(configured).expanduser().resolve().is_relative_to(directory.resolve())


def verify_model(directory: str | Path, require_signature: bool = False) -> Verification:
    """Check every file against the manifest and the manifest's signature.

    With a configured signing key (:func:`signing_key`) an unsigned manifest, or one
    signed with another key, is refused.

    Parameters
    ----------
    directory : model directory.
    require_signature : refuse the directory unless a key checks its signature.

    Raises
    ------
    ArtifactError
        If the manifest or a listed file is missing, any hash or the signature differs,
        or the model file is not a skops file of allow-listed types.
    """
    directory = Path(directory)
    verification = _verify(directory, signing_key(), require_signature)
    checked_types((directory / MODEL_FILE).read_bytes(), str(directory / MODEL_FILE))
    return verification


def seal_directory(directory: str | Path, names: Iterable[str]) -> None:
    """Write the sha256 manifest (signed when a key is configured) of a directory of
    outputs that holds no model, such as a forecast."""
    _write_manifest(Path(directory), names, signing_key())


def verify_directory(directory: str | Path, require_signature: bool = False) -> Verification:
    """Check a sealed directory's files against its manifest and signature.

    Raises
    ------
    ArtifactError
        If the manifest or a listed file is missing, or any hash or the signature differs.
    """
    return _verify(Path(directory), signing_key(), require_signature, required=None)


def _modified(path: Path, actual: str, expected: str) -> ArtifactError:
    return ArtifactError(
        f"{path} has been modified since it was saved "
        f"(sha256 {actual[:12]}…, manifest says {expected[:12]}…); refusing to load it"
    )


def _verify(
    directory: Path,
    key: SigningKey | None,
    require_signature: bool,
    required: str | None = MODEL_FILE,
) -> Verification:
    """The manifest's hashes and signature; callers check the model file's types."""
    if key is not None and _key_inside(directory):
        raise ArtifactError(
            f"the signing key file lies inside {directory}: whoever can write the "
            "directory could then re-sign it; keep the key elsewhere"
        )
    manifest = _read_manifest(directory, required)
    files: dict[str, str] = manifest["files"]
    for name, expected in files.items():
        path = directory / name
        if Path(name).name != name or not path.is_file():
            raise ArtifactError(f"{path} is listed in the manifest but missing")
        actual = _sha256(path)
        if actual != expected:
            raise _modified(path, actual, expected)
    signed_by, checked = _check_signature(
        manifest, directory / MANIFEST_FILE, key, require_signature
    )
    return Verification(files=dict(files), signed_by=signed_by, signature_checked=checked)


def _input_columns(estimator: Any) -> list[str] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _check_schema(estimator: Any, metadata: ModelMetadata, directory: Path) -> None:
    """Refuse an estimator whose input columns differ from the saved schema's features."""
    expected = _input_columns(estimator)
    if metadata.data_schema is None or expected is None:
        return
    declared = metadata.feature_names
    missing = [c for c in expected if c not in declared]
    unused = [c for c in declared if c not in expected]
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"the model needs column(s) the schema lacks: {', '.join(missing)}")
        if unused:
            parts.append(f"the schema lists column(s) the model does not use: {', '.join(unused)}")
        raise ArtifactError(
            f"{directory / MODEL_FILE} does not match {directory / METADATA_FILE} "
            f"({'; '.join(parts)}); was the model file swapped from another study?"
        )


def _read_verified(directory: Path, verification: Verification, name: str) -> bytes:
    """``name``'s bytes, refused unless they are the ones ``verification`` hashed."""
    path = directory / name
    expected = verification.files.get(name)
    if expected is None:
        raise ArtifactError(f"{path} is not listed in {directory / MANIFEST_FILE}")
    try:
        payload = path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"{path} cannot be read ({err})") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise _modified(path, actual, expected)
    return payload


def _load_stored(
    directory: Path, verification: Verification, name: str, allowed: frozenset[str]
) -> Any:
    """The one loader of stored skops files, the estimator included: listed in the
    manifest, the bytes ``verification`` hashed, only types in ``allowed``."""
    payload = _read_verified(directory, verification, name)
    return loads_checked(payload, str(directory / name), allowed)


def _read_metadata(directory: Path, verification: Verification) -> ModelMetadata:
    """The verified ``metadata.json``, normalised to the current format."""
    source = directory / METADATA_FILE
    try:
        data = json.loads(_read_verified(directory, verification, METADATA_FILE))
        return ModelMetadata.read(data, str(source))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{source} is not readable JSON ({err})") from None
    except ValueError as err:
        raise ArtifactError(str(err)) from None


def load_model(directory: str | Path, require_signature: bool = False) -> LoadedModel:
    """Verify and load a model directory written by :func:`save_model`.

    The manifest is verified once; the returned :class:`LoadedModel` carries that
    verification, against which every further stored file is read.

    Parameters
    ----------
    directory : model directory.
    require_signature : refuse it unless the configured key checks its signature.
    """
    directory = Path(directory)
    verification = _verify(directory, signing_key(), require_signature)
    estimator = _load_stored(directory, verification, MODEL_FILE, TRUSTED_TYPES)
    metadata = _read_metadata(directory, verification)
    _check_schema(estimator, metadata, directory)
    return LoadedModel(estimator, metadata, directory, verification)
