"""skops files written and read against medpredict's allow-list of exact types.

:func:`dumps_checked` refuses to write an object whose loading would need a type outside
:data:`medpredict.trusted_types.TRUSTED_TYPES`, and :func:`loads_checked` constructs only
those types, reading types saved under a module path they have since left
(:data:`medpredict.trusted_types.MOVED_TYPES`) under their current name. Model
directories (:mod:`medpredict.artifact`) store every object this way.

Examples
--------
>>> from sklearn.linear_model import LogisticRegression
>>> payload = dumps_checked(LogisticRegression(C=0.5))
>>> checked_types(payload, "example")
['sklearn.linear_model._logistic.LogisticRegression']
>>> loads_checked(payload, "example").C
0.5
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from typing import Any

from medpredict.trusted_types import MOVED_TYPES, TRUSTED_TYPES


class ArtifactError(RuntimeError):
    """A model directory is incomplete, tampered with, unsigned, or names untrusted types."""



def skops_io() -> Any:
    """``skops.io``, imported without its import-time walk of scikit-learn.

    On import, skops builds its default list of trusted types by importing every
    scikit-learn module (and through them torch): a second or more, on every
    ``medpredict predict``. medpredict never uses that default list: :func:`loads_checked`
    checks each type in a file against its own allow-list and passes exactly those as
    trusted. So the walk is skipped while skops is imported, and when skops was already
    imported with it (by other code in the process) its default list is emptied, so the
    allow-list alone decides which scikit-learn types a file may name.
    """
    if "skops.io" not in sys.modules:
        import sklearn.utils

        walk = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda type_filter=None: []
        try:
            import skops.io  # noqa: F401
        finally:
            sklearn.utils.all_estimators = walk
    sys.modules["skops.io._trusted_types"].SKLEARN_ESTIMATOR_TYPE_NAMES.clear()
    return sys.modules["skops.io"]


def checked_types(
    payload: bytes, source: str, allowed: frozenset[str] = TRUSTED_TYPES
) -> list[str]:
    """The types ``payload`` names beyond skops' own safe set, all within ``allowed``.

    Raises
    ------
    ArtifactError
        If ``payload`` is not a skops file or names a type outside ``allowed``.
    """
    try:
        types = skops_io().get_untrusted_types(data=payload)
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{source} is not a readable skops file ({err})") from None
    refused = [t for t in types if t not in allowed]
    if refused:
        raise ArtifactError(f"{source} names types outside the allow-list: {', '.join(refused)}")
    return types


def dumps_checked(obj: Any, allowed: frozenset[str] = TRUSTED_TYPES) -> bytes:
    """``obj`` serialised with skops, refused if loading it would need an unlisted type."""
    payload = skops_io().dumps(obj)
    try:
        checked_types(payload, type(obj).__name__, allowed)
    except ArtifactError as err:
        raise ArtifactError(
            f"cannot save {err}; list the type in medpredict/trusted_types.py "
            "if constructing it from stored attributes runs no code"
        ) from None
    return payload


def loads_checked(payload: bytes, source: str, allowed: frozenset[str] = TRUSTED_TYPES) -> Any:
    """Construct the object in skops ``payload`` after checking every type it names.

    Types saved under a module path they have since left (:data:`MOVED_TYPES`) are read
    under their current name.
    """
    payload = _current_type_names(payload)
    return skops_io().loads(payload, trusted=checked_types(payload, source, allowed))


def _renamed(node: Any) -> Any:
    if isinstance(node, list):
        return [_renamed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _renamed(value) for key, value in node.items()}
    moved = MOVED_TYPES.get(f"{node.get('__module__')}.{node.get('__class__')}")
    if moved is not None:
        node["__module__"], node["__class__"] = moved.rsplit(".", 1)
    return node


def _current_type_names(payload: bytes) -> bytes:
    """``payload`` with every type in :data:`MOVED_TYPES` renamed to its current path."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            schema = archive.read("schema.json").decode()
            if not any(old.rsplit(".", 1)[0] in schema for old in MOVED_TYPES):
                return payload
            members = {info: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return payload
    renamed = io.BytesIO()
    with zipfile.ZipFile(renamed, "w") as archive:
        for info, data in members.items():
            if info.filename == "schema.json":
                data = json.dumps(_renamed(json.loads(data))).encode()
            archive.writestr(info, data)
    return renamed.getvalue()
