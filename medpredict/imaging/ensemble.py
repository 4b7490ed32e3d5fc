"""Equal-weight averages of image models: the probe and the fine-tuned network together.

A frozen-feature probe and a fine-tuned network make different errors on small image
sets; the mean of their probabilities (a soft vote) is usually at least as good as the
better of the two and needs no extra data to weight them.

Examples
--------
>>> import numpy as np
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import FunctionTransformer
>>> from sklearn.linear_model import LogisticRegression
>>> flat = FunctionTransformer(lambda x: x.reshape(len(x), -1))
>>> X = np.random.default_rng(0).random((20, 4, 4)); y = np.arange(20) % 2
>>> model = AveragedImageModels([("a", make_pipeline(flat, LogisticRegression())),
...                              ("b", make_pipeline(flat, LogisticRegression(C=0.1)))])
>>> model.fit(X, y).predict_proba(X).shape
(20, 2)
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from medpredict.artifact import WEIGHTS_FILE
from medpredict.models.ensembles import fit_member


def accepts_validation(estimator: Any) -> bool:
    """Whether ``estimator.fit`` takes a validation split (``X_val``, ``y_val``).

    A validation split is not routed like per-row metadata: inside a pipeline it would
    skip the pipeline's earlier steps, so only an estimator whose own ``fit`` names
    ``X_val`` receives it.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from medpredict.imaging.transfer import ImageTransferClassifier
    >>> network = ImageTransferClassifier()
    >>> accepts_validation(network), accepts_validation(make_pipeline(network))
    (True, False)
    """
    return "X_val" in inspect.signature(estimator.fit).parameters


class AveragedImageModels(ClassifierMixin, BaseEstimator):
    """Mean of the members' class probabilities.

    Parameters
    ----------
    members : list of ``(name, estimator)``; each is cloned and fitted on the same images.
        Members that accept a validation split (networks, for early stopping) get it.
    """

    # patient ids reach ``fit`` through scikit-learn metadata routing, even inside a Pipeline
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"groups": True}

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = members

    def fit(
        self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, groups: Any = None
    ) -> AveragedImageModels:
        """Fit every member on ``X, y`` (networks early-stop on ``X_val, y_val``).

        Without a validation split, ``groups`` (patient id per image) go to the members
        that request them, whose inner early-stopping split then keeps a patient together.
        """
        if not self.members:
            raise ValueError("AveragedImageModels needs at least one member")
        fitted = []
        for _, member in self.members:
            member = clone(member)
            if X_val is not None and accepts_validation(member):
                member.fit(X, y, X_val=X_val, y_val=y_val)
            else:
                fit_member(member, X, y, None if groups is None else np.asarray(groups))
            fitted.append(member)
        for (name, _), member in zip(self.members, fitted, strict=True):
            if not np.array_equal(member.classes_, fitted[0].classes_):
                raise ValueError(f"member {name!r} learned other classes than the first member")
        self.members_ = fitted
        self.classes_ = fitted[0].classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The members' probabilities, averaged."""
        check_is_fitted(self)
        return np.mean([member.predict_proba(X) for member in self.members_], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest averaged probability."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def network_weights(estimator: Any) -> dict[str, bytes]:
    """Safetensors files of the torch networks in ``estimator``, by file name.

    A network (anything with ``export_weights``) gives ``weights.safetensors``; an
    :class:`AveragedImageModels` gives its network members' weights, as
    ``weights.safetensors`` for a single network and ``weights-<member>.safetensors``
    for several. Each file loads with ``weights=`` on the same backbone.
    """
    if hasattr(estimator, "export_weights"):
        return {WEIGHTS_FILE: estimator.export_weights()}
    if not isinstance(estimator, AveragedImageModels):
        return {}
    check_is_fitted(estimator)
    networks = [
        (name, member)
        for (name, _), member in zip(estimator.members, estimator.members_, strict=True)
        if hasattr(member, "export_weights")
    ]
    if len(networks) == 1:
        return {WEIGHTS_FILE: networks[0][1].export_weights()}
    return {f"weights-{name}.safetensors": member.export_weights() for name, member in networks}
