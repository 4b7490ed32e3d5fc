"""Locations medpredict reads from and writes to, set by environment variables.

``MEDPREDICT_DATA_DIR``
    Folder of real reference data (read-only is fine). Looked in first when set.
``../shared/data``
    The layout used by the project's own tests and benchmarks (beside the current
    working directory's parent); looked in next when it exists.
``MEDPREDICT_CACHE_DIR``
    Writable folder for caches (embeddings, downloaded weights, reference data fetched
    by ``medpredict datasets fetch``). Defaults to ``~/.cache/medpredict``. Fetched
    reference data, under ``reference-data/``, is looked in last.
``MEDPREDICT_DATA_MIRROR``
    Base URL with the same relative layout as ``../shared/data``; when set,
    ``medpredict datasets fetch`` downloads every file from ``<mirror>/<relative path>``
    instead of its original source.
"""

from __future__ import annotations

import os
from pathlib import Path


def _cache_root() -> Path:
    configured = os.environ.get("MEDPREDICT_CACHE_DIR")
    path = Path(configured) if configured else Path.home() / ".cache" / "medpredict"
    return path.expanduser()


def cache_dir() -> Path:
    """Return a writable cache folder (``MEDPREDICT_CACHE_DIR``), creating it."""
    path = _cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """Return ``../shared/data`` relative to the current working directory."""
    return (Path.cwd().parent / "shared" / "data").resolve()


def fetched_data_dir() -> Path:
    """Return the folder ``medpredict datasets fetch`` stores reference data in."""
    return _cache_root() / "reference-data"


def data_mirror() -> str | None:
    """Return the reference-data mirror URL (``MEDPREDICT_DATA_MIRROR``), if set."""
    return os.environ.get("MEDPREDICT_DATA_MIRROR") or None


def data_dirs() -> list[Path]:
    """Return the folders reference data is looked up in, in order.

    ``MEDPREDICT_DATA_DIR`` if set, then ``../shared/data`` if it exists, then the
    fetched-data cache (:func:`fetched_data_dir`).
    """
    folders = []
    configured = os.environ.get("MEDPREDICT_DATA_DIR")
    if configured:
        folders.append(Path(configured).expanduser())
    shared = shared_data_dir()
    if shared.is_dir():
        folders.append(shared)
    folders.append(fetched_data_dir())
    return folders


def data_dir() -> Path:
    """Return the first reference-data folder in the lookup order (see :func:`data_dirs`)."""
    return data_dirs()[0]


def find_data(relative: str) -> Path | None:
    """Return the first ``folder / relative`` that exists in :func:`data_dirs`, else None."""
    return next((d / relative for d in data_dirs() if (d / relative).exists()), None)


def require_data(relative: str) -> Path:
    """Return the reference-data path ``relative`` or raise an error naming where it looked.

    Parameters
    ----------
    relative : str
        Path inside the reference-data layout, e.g. ``"images/breastmnist_28.npz"``.

    Raises
    ------
    FileNotFoundError
        Naming ``MEDPREDICT_DATA_DIR``, ``../shared/data``, the fetched-data cache and
        the ``medpredict datasets fetch`` command that downloads the file.
    """
    found = find_data(relative)
    if found is not None:
        return found
    from medpredict.data.reference import dataset_holding

    dataset = dataset_holding(relative)
    configured = os.environ.get("MEDPREDICT_DATA_DIR")
    fetch = (
        f"run `medpredict datasets fetch {dataset.name}` to download it"
        if dataset is not None
        else "it is not in medpredict's reference-data catalogue (`medpredict datasets`)"
    )
    raise FileNotFoundError(
        f"reference data {relative!r} not found; looked in MEDPREDICT_DATA_DIR "
        f"({configured or 'not set'}), ../shared/data ({shared_data_dir()}) and the "
        f"fetched-data cache ({fetched_data_dir()}); {fetch}"
    )
