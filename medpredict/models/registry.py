"""Name -> estimator factories, so a study spec can name any model.

A factory takes ``seed`` (int), ``class_weight`` ("balanced" or None) and the model's
keyword parameters from the spec, and returns an unfitted scikit-learn classifier.
By default the study runner puts the tabular preprocessor (imputation with missing
indicators, scaling, one-hot encoding) in front of the model; a model registered with
``raw_input=True`` receives the cohort's feature columns as a pandas DataFrame instead
and does its own preprocessing inside ``fit`` (e.g. categorical embeddings).
Modules that add models register them on import; :func:`make_model` imports every
built-in model module first so names resolve whatever was imported before.

Examples
--------
>>> from medpredict.models import make_model
>>> make_model("logistic_regression", seed=0).__class__.__name__
'LogisticRegression'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from sklearn.base import ClassifierMixin, clone
from sklearn.pipeline import Pipeline

from medpredict.data.errors import SpecError

Factory = Callable[..., ClassifierMixin]
_FACTORIES: dict[str, Factory] = {}
_DESCRIPTIONS: dict[str, str] = {}
_RAW_INPUT: set[str] = set()
_SURVIVAL: set[str] = set()
_BUILTIN_MODULES = ("medpredict.models.classical",)
_OPTIONAL_MODULES = (
    "medpredict.models.deep",
    "medpredict.models.hybrid",
    "medpredict.imaging.models",
    "medpredict.signals.models",
    "medpredict.models.fusion",
    "medpredict.timeline.sequence",
    "medpredict.survival.models",
    "medpredict.survival.deep",
)


def register_model(
    name: str, description: str = "", raw_input: bool = False, survival: bool = False
) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory`` under ``name``.

    ``raw_input=True`` marks a model that takes the raw feature DataFrame;
    ``survival=True`` a time-to-event model (:mod:`medpredict.survival.models`), which
    only survival studies use and classification studies refuse.
    """

    def decorate(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        if raw_input:
            _RAW_INPUT.add(name)
        if survival:
            _SURVIVAL.add(name)
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        return factory

    return decorate


def _load_builtin() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for module in _OPTIONAL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if not (err.name or "").startswith("medpredict"):
                continue  # its optional dependencies are not installed: its models are absent
            raise


def available_models() -> dict[str, str]:
    """Registered model names with a one-line description each."""
    _load_builtin()
    return dict(sorted(_DESCRIPTIONS.items()))


def takes_raw_input(name: str) -> bool:
    """Whether the model registered as ``name`` does its own preprocessing."""
    _load_builtin()
    return name in _RAW_INPUT


def is_survival_model(name: str) -> bool:
    """Whether the model registered as ``name`` predicts time to event."""
    _load_builtin()
    return name in _SURVIVAL


def check_model_names(names: list[str], survival: bool | None = None) -> None:
    """Refuse a list of model names that includes any unregistered name.

    ``survival`` (when given) also refuses models of the other kind: a classifier in a
    survival study, or a survival model in a classification study.

    Raises
    ------
    SpecError
        Naming every unknown model and listing the known names of the right kind.
    """
    _load_builtin()
    known = sorted(
        n for n in _FACTORIES if survival is None or (n in _SURVIVAL) == survival
    )
    unknown = [name for name in names if name not in known]
    if unknown:
        kind = {True: "survival ", False: "classification ", None: ""}[survival]
        raise SpecError(
            f"models: unknown {kind}model {', '.join(map(repr, unknown))}; "
            f"expected one of: {', '.join(known)}"
        )


def make_model(
    name: str,
    seed: int = 0,
    class_weight: str | None = None,
    n_samples: int | None = None,
    **params: Any,
) -> ClassifierMixin:
    """Build the unfitted estimator registered as ``name``.

    ``n_samples`` (the training-set size, when known) reaches factories that declare
    it, so they can pick defaults that stay fast on large tables.

    Raises
    ------
    SpecError
        When no model is registered as ``name`` (the message lists the known names).
    """
    check_model_names([name])
    factory = _FACTORIES[name]
    if "n_samples" in inspect.signature(factory).parameters:
        params["n_samples"] = n_samples
    return factory(seed=seed, class_weight=class_weight, **params)


def raw_member(
    name: str,
    seed: int = 0,
    class_weight: str | None = None,
    n_samples: int | None = None,
    preprocessor: Any = None,
    **params: Any,
) -> Any:
    """The registered model ``name`` as an estimator that accepts the raw feature table.

    Models registered with ``raw_input=True`` are returned as they are; the others get
    ``preprocessor`` (default: a one-hot :class:`~medpredict.models.deep.TabularEncoder`)
    in front of them, fitted with the model on the same rows.
    """
    model = make_model(name, seed=seed, class_weight=class_weight, n_samples=n_samples, **params)
    if takes_raw_input(name):
        return model
    if preprocessor is None:
        from medpredict.models.deep.encoding import TabularEncoder

        preprocessor = TabularEncoder(numeric="standard", categorical="onehot")
    return Pipeline([("encode", clone(preprocessor)), ("model", model)])
