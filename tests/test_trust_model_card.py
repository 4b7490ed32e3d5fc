"""TRIPOD+AI model card: every item present in HTML, Markdown and JSON."""

from __future__ import annotations

import json

import pytest

from medpredict.evaluation.bootstrap import Estimate
from medpredict.report.html import render
from medpredict.trust.model_card import ITEMS, NOT_REPORTED, TRIPOD_KEYS, ModelCard

TRIPOD_AI_TITLES = [
    "Intended use", "Data source", "Participants", "Outcome", "Predictors", "Sample size",
    "Missing data", "Model building", "Performance", "Calibration", "Fairness", "Limitations",
]


def test_items_cover_tripod_ai():
    titles = [item.title for item in ITEMS if item.key in TRIPOD_KEYS]
    assert titles == TRIPOD_AI_TITLES


def test_every_item_is_rendered_even_when_empty():
    card = ModelCard.build(
        "pima",
        {
            "intended_use": "Type 2 diabetes screening of adult Pima women.",
            "performance": {"auroc": Estimate(0.83, 0.79, 0.87)},
            "limitations": ["Single population", "Internal validation only"],
        },
        {"model": "LogisticRegression"},
    )
    html = render("card", card.sections())
    markdown = card.to_markdown()
    data = json.loads(card.to_json())
    for item in ITEMS:
        assert f"Model card: {item.title}" in html
        assert f"## {item.title}" in markdown
        assert data["items"][item.key]["title"] == item.title
    assert "0.830 (95% CI 0.790–0.870)" in markdown and "0.830 (95% CI 0.790–0.870)" in html
    assert data["items"]["performance"]["content"]["auroc"] == {
        "value": 0.83, "low": 0.79, "high": 0.87
    }
    assert data["items"]["data_source"]["content"] == NOT_REPORTED
    assert "data_source" in data["not_reported"] and "intended_use" not in card.missing
    assert set(card.extra_files()) == {"model_card.md", "model_card.json"}


def test_unknown_field_is_an_error():
    with pytest.raises(ValueError, match=r"unknown model card fields \['intended_usage'\]"):
        ModelCard.build("x", {"intended_usage": "typo"})
