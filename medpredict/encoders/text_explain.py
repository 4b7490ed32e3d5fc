"""Per-prediction explanations for text models: the most influential sentences or words.

Occlusion: each sentence (or word) is removed in turn and the drop in the predicted
probability of the explained class is its influence. It works for any fitted model
that takes text (a pipeline starting with :class:`~medpredict.encoders.text.SentenceEncoder`
or the TF-IDF baseline, a fusion model, ...). Positive influence supports the class.

Examples
--------
>>> from medpredict.encoders.text import tfidf_pipeline
>>> texts = ["Tumour of the breast. Chest pain.", "Angina and chest pain. Mild fever."] * 5
>>> model = tfidf_pipeline().fit(texts, ["onc", "cardio"] * 5)
>>> explain_text(model, "Tumour of the breast. Chest pain.", top=1)["unit"].tolist()
['Tumour of the breast.']
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

_UNITS = {"sentence": re.compile(r"[^.!?]+(?:[.!?]+|$)"), "word": re.compile(r"\S+")}


def _spans(text: str, unit: str) -> list[tuple[int, int]]:
    if unit not in _UNITS:
        raise ValueError(f"unit must be 'sentence' or 'word', got {unit!r}")
    spans = []
    for match in _UNITS[unit].finditer(text):
        start = match.start() + len(match.group()) - len(match.group().lstrip())
        if match.group().strip():
            spans.append((start, match.end()))
    return spans


def explain_text(
    model: Any,
    text: str,
    target: Any = None,
    unit: str = "sentence",
    top: int | None = 5,
    column: str | None = None,
) -> pd.DataFrame:
    """Rank the sentences or words of ``text`` by their influence on ``model``'s prediction.

    Parameters
    ----------
    model : fitted classifier with ``predict_proba`` and ``classes_`` taking text input.
    text : the document to explain.
    target : class to explain (default: the predicted class).
    unit : ``"sentence"`` or ``"word"``.
    top : number of units to return (None for all), most influential first.
    column : column name the model expects; default: the one it was fitted on, if any.

    Returns
    -------
    DataFrame with ``unit`` (the text span), ``start``, ``end`` (character offsets),
    ``influence`` (probability of ``target`` with the unit minus without it) and
    ``target``.
    """
    spans = _spans(text, unit)
    if not spans:
        raise ValueError("the text has no words to explain")
    variants = [text] + [(text[:s] + text[e:]).strip() for s, e in spans]
    if column is None:
        names = getattr(model, "feature_names_in_", None)
        column = str(names[0]) if names is not None and len(names) == 1 else "text"
    proba = model.predict_proba(pd.DataFrame({column: variants}))
    classes = list(model.classes_)
    index = int(np.argmax(proba[0])) if target is None else classes.index(target)
    influence = proba[0, index] - proba[1:, index]
    table = pd.DataFrame(
        {
            "unit": [text[s:e] for s, e in spans],
            "start": [s for s, _ in spans],
            "end": [e for _, e in spans],
            "influence": influence,
            "target": classes[index],
        }
    ).sort_values("influence", ascending=False, kind="stable")
    return table.reset_index(drop=True).head(top) if top else table.reset_index(drop=True)
