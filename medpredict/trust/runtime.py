"""The trust layer at prediction time: what ``predict --explain`` and serve need.

A study stores beside its model a calibrated conformal predictor and an explanation
background (:class:`medpredict.trust.assess.TrustResult`). :func:`load_trust` reads
them back from a verified model directory and :func:`annotate_predictions` adds each
new patient's conformal set, referral status and top factors to a prediction. This
module imports neither fairlearn nor matplotlib, so serving stays light.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medpredict.artifact import LoadedModel, loads_checked, verify_model
from medpredict.data.errors import DataError
from medpredict.trust.conformal import ConformalSets, set_status
from medpredict.trust.explanations import background_from_json, explain

CONFORMAL_FILE = "conformal.skops"
BACKGROUND_FILE = "explainer_background.json"
CONFORMAL_TYPES = frozenset({"medpredict.trust.conformal.ConformalSets"})


def load_trust(model_dir: str | Path) -> tuple[ConformalSets, pd.DataFrame]:
    """The conformal predictor and explanation background stored in ``model_dir``.

    The directory's manifest is verified first; only the ConformalSets type may be
    instantiated from the conformal file.
    """
    model_dir = Path(model_dir)
    files = verify_model(model_dir).files
    absent = [name for name in (CONFORMAL_FILE, BACKGROUND_FILE) if name not in files]
    if absent:
        raise FileNotFoundError(f"{model_dir} has no trust files {absent}; rerun the study")
    payload = (model_dir / CONFORMAL_FILE).read_bytes()
    conformal = loads_checked(payload, str(model_dir / CONFORMAL_FILE), CONFORMAL_TYPES)
    return conformal, background_from_json((model_dir / BACKGROUND_FILE).read_bytes())


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
    X = validate_input(frame, metadata["schema"], keep)
    conformal, background = load_trust(loaded.path)
    group_column = ((metadata.get("spec") or {}).get("trust") or {}).get("conformal_group")
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
    classes = np.asarray([str(c) for c in metadata["classes"]], dtype=object)
    factors = explain(loaded.estimator, X, background).top_factors(k)
    return pd.DataFrame(
        {
            "prediction_set": ["{" + ", ".join(classes[row]) + "}" for row in sets],
            "uncertainty": set_status(sets),
            "top_factors": [json.dumps(f) for f in factors],
        }
    )
