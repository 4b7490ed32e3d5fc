"""The trust layer at prediction time: what ``predict --explain`` and serve need.

A study stores beside its model a calibrated conformal predictor and an explanation
background (:class:`medpredict.trust.assess.TrustResult`). :func:`load_trust` reads
them back from a loaded model directory, through the checks its load verified, and
:func:`annotate_predictions` adds each new patient's conformal set, referral status
and top factors to a prediction. This module imports neither fairlearn nor
matplotlib, so serving stays light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from medpredict.artifact import BACKGROUND_FILE, CONFORMAL_FILE, LoadedModel
from medpredict.data.errors import DataError
from medpredict.trust.conformal import ConformalSets, set_status
from medpredict.trust.explanations import background_from_json, explain

CONFORMAL_TYPES = frozenset({"medpredict.trust.conformal.ConformalSets"})
TRUST_FILES = (CONFORMAL_FILE, BACKGROUND_FILE)


def has_trust_files(loaded: LoadedModel) -> bool:
    """Whether the study stored the trust layer's files in ``loaded``'s directory.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medpredict.artifact import load_model, save_model
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> has_trust_files(load_model(save_model(tempfile.mkdtemp(), model, {"name": "demo"})))
    False
    """
    return all(loaded.has_file(name) for name in TRUST_FILES)


def load_trust(loaded: LoadedModel) -> tuple[ConformalSets, pd.DataFrame]:
    """The conformal predictor and explanation background stored with ``loaded``.

    Both files are read against the manifest :func:`medpredict.artifact.load_model`
    verified (it is not read again); only the ConformalSets type may be instantiated
    from the conformal file.

    Raises
    ------
    FileNotFoundError
        If the directory holds no trust files.
    medpredict.artifact.ArtifactError
        If a trust file changed since the load or names another type.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medpredict.artifact import load_model, save_model
    >>> from medpredict.safe_skops import dumps_checked
    >>> from medpredict.trust.explanations import background_to_json
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]}); y = np.array([0, 0, 1, 1])
    >>> model = LogisticRegression().fit(X, y)
    >>> conformal = ConformalSets(alpha=0.2).fit(model.predict_proba(X), y)
    >>> files = {CONFORMAL_FILE: dumps_checked(conformal, CONFORMAL_TYPES),
    ...          BACKGROUND_FILE: background_to_json(X)}
    >>> loaded = load_model(save_model(tempfile.mkdtemp(), model, {"name": "demo"}, files))
    >>> conformal, background = load_trust(loaded)
    >>> conformal.alpha, background.shape
    (0.2, (4, 1))
    """
    absent = [name for name in TRUST_FILES if not loaded.has_file(name)]
    if absent:
        raise FileNotFoundError(f"{loaded.path} has no trust files {absent}; rerun the study")
    conformal = loaded.load_object(CONFORMAL_FILE, CONFORMAL_TYPES)
    return conformal, background_from_json(loaded.read_file(BACKGROUND_FILE))


def annotate_predictions(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    keep: Sequence[str] = (),
    k: int = 5,
) -> pd.DataFrame:
    """Conformal set, referral status and top factors for each row of ``frame``.

    Parameters
    ----------
    loaded : a model directory loaded with :func:`medpredict.artifact.load_model`,
        saved with :meth:`TrustResult.extra_files`.
    frame : new patients (the model's feature columns plus any ``keep`` columns).
    keep : input columns that are not features (e.g. a patient id); when the study
        calibrated conformal sets per group, that group's column must be among them
        or among the features.
    k : number of factors per patient.

    Returns
    -------
    DataFrame with ``prediction_set`` (class labels the model cannot rule out),
    ``uncertainty`` (``"confident"``, ``"uncertain — refer"`` or ``"atypical — refer"``)
    and ``top_factors`` (JSON list of ``{feature, value, contribution}``), row by row.
    """
    from medpredict.predict import role_columns, validate_input

    metadata = loaded.metadata
    keep = [*keep, *(c for c in role_columns(metadata, frame) if c not in keep)]
    X = validate_input(frame, metadata.data_schema or {}, keep)
    conformal, background = load_trust(loaded)
    group_column = metadata.conformal_group
    groups = None
    if len(conformal.group_names_):
        if group_column is None or group_column not in frame.columns:
            raise DataError(
                f"this model's uncertainty is calibrated per {group_column or 'group'}: "
                f"the input needs the column {group_column!r}"
            )
        groups = frame[group_column].to_numpy()
    proba = loaded.estimator.predict_proba(X)
    sets = conformal.predict_set(proba, groups)
    classes = np.asarray(metadata.classes, dtype=object)
    factors = explain(loaded.estimator, X, background).top_factors(k)
    return pd.DataFrame(
        {
            "prediction_set": ["{" + ", ".join(classes[row]) + "}" for row in sets],
            "uncertainty": set_status(sets),
            "top_factors": [json.dumps(f) for f in factors],
        }
    )
