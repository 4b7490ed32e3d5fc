"""Import a package that comes with one of medpredict's optional extras.

The core install runs tabular studies, predictions, reports and the trust layer. Images,
text, signals, wearables, the deep tabular models and the prediction service each need
packages that come with an extra, e.g. ``pip install 'medpredict[imaging]'``. Code that
needs one of them imports it with :func:`require` at the point of use, so a user who
lacks it learns which extra to install instead of meeting a bare ``ModuleNotFoundError``
from deep inside medpredict.

Examples
--------
>>> require("json", extra="serve").__name__
'json'
>>> try:
...     require("no_such_package", extra="imaging")
... except MissingExtraError as err:
...     print(err)
no_such_package is not installed; install it with: pip install 'medpredict[imaging]'
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that brings it.

    Attributes
    ----------
    extra : str
        The medpredict extra to install (``serve``, ``imaging``, ``text``, ...).
    """

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed; install it with: pip install 'medpredict[{extra}]'",
            name=module,
        )
        self.extra = extra


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or explain which medpredict extra installs it.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"torch"`` or ``"pydicom"``.
    extra : str
        The extra of ``pyproject.toml`` whose packages include it, e.g. ``"imaging"``.

    Returns
    -------
    ModuleType
        The imported module.

    Raises
    ------
    MissingExtraError
        When ``module`` (or the package it belongs to) is not installed. An import
        error raised from inside an installed package is not masked.

    Examples
    --------
    >>> require("json.decoder", extra="text").__name__
    'json.decoder'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not (module == err.name or module.startswith(f"{err.name}.")):
            raise
        raise MissingExtraError(module, extra) from err
