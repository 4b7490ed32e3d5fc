"""Locations medpredict reads from and writes to, set by environment variables.

``MEDPREDICT_DATA_DIR``
    Folder of real reference data (read-only is fine). Defaults to ``../shared/data``
    next to the current working directory's parent, the layout used by the project's
    tests and benchmarks.
``MEDPREDICT_CACHE_DIR``
    Writable folder for caches (embeddings, downloaded weights). Defaults to
    ``~/.cache/medpredict``.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Return the reference-data folder (``MEDPREDICT_DATA_DIR``)."""
    configured = os.environ.get("MEDPREDICT_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return (Path.cwd().parent / "shared" / "data").resolve()


def cache_dir() -> Path:
    """Return a writable cache folder (``MEDPREDICT_CACHE_DIR``), creating it."""
    configured = os.environ.get("MEDPREDICT_CACHE_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "medpredict"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_data(relative: str) -> Path:
    """Return ``data_dir() / relative`` or raise a clear error naming the setting.

    Parameters
    ----------
    relative : str
        Path inside the reference-data folder, e.g. ``"images/breastmnist_28.npz"``.
    """
    path = data_dir() / relative
    if not path.exists():
        raise FileNotFoundError(
            f"reference data {relative!r} not found under {data_dir()}; "
            "set MEDPREDICT_DATA_DIR to the folder that holds it"
        )
    return path
