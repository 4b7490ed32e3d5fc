"""Versions of the libraries a model was built with, recorded in its metadata."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("medpredict", "numpy", "pandas", "scikit-learn", "lightgbm", "skops", "torch")


def library_versions() -> dict[str, str]:
    """Installed versions of the core libraries, plus Python's."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
