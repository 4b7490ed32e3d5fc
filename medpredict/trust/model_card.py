"""Model card following the TRIPOD+AI reporting items (Collins et al., BMJ 2024;385:e078378).

A :class:`ModelCard` holds one entry per reporting item (intended use, data source,
participants, outcome, predictors, sample size, missing data, model building,
performance with CIs, calibration, fairness, limitations) plus medpredict's
uncertainty and explainability summaries. Entries are plain data: text, lists, or
mappings (an ``{"value", "low", "high"}`` mapping is shown as an estimate with its
95% CI). Items nobody filled in are kept and shown as not reported, so a reader sees
the gap instead of missing it.

The card renders as report sections, as ``model_card.md`` and as ``model_card.json``
(:meth:`ModelCard.extra_files` gives both for a model directory).

Examples
--------
>>> card = ModelCard.build("Diabetes risk", {"intended_use": "Screening in primary care."})
>>> card.missing[:2]
['data_source', 'participants']
>>> "## Intended use" in card.to_markdown()
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medpredict.artifact import MODEL_CARD_JSON, MODEL_CARD_MD
from medpredict.report.html import Section, callout, escape, table

NOT_REPORTED = "Not reported."


@dataclass(frozen=True)
class CardItem:
    """One reporting item: field name, heading, TRIPOD+AI item numbers, what it holds."""

    key: str
    title: str
    tripod: str
    asks: str


ITEMS: tuple[CardItem, ...] = (
    CardItem("intended_use", "Intended use", "3a–3c",
             "Healthcare context, target population, intended users and the decision the "
             "prediction informs."),
    CardItem("data_source", "Data source", "5a–5b",
             "Where the data come from (registry, trial, EHR extract), dates of collection."),
    CardItem("participants", "Participants", "6a–6c, 20a–20b",
             "Setting, eligibility criteria, flow of participants, rows excluded and why."),
    CardItem("outcome", "Outcome", "8a–8c",
             "What is predicted, how and when it was assessed, over what time horizon."),
    CardItem("predictors", "Predictors", "9a–9c",
             "Predictors used, their kinds and how they were measured."),
    CardItem("sample_size", "Sample size", "10",
             "Number of participants and events, events per candidate parameter."),
    CardItem("missing_data", "Missing data", "11",
             "How much is missing per predictor and how it was handled."),
    CardItem("model_building", "Model building", "12a–12f",
             "Preprocessing, model type and settings, selection, internal validation."),
    CardItem("performance", "Performance", "12e, 23a",
             "Discrimination and other measures, each with a 95% CI, per validation."),
    CardItem("calibration", "Calibration", "12e, 23a",
             "Calibration-in-the-large, slope and expected calibration error with CIs."),
    CardItem("fairness", "Fairness", "14, 23b",
             "Performance across sensitive groups, flagged disparities, mitigation."),
    CardItem("limitations", "Limitations", "27a–27c",
             "Known weaknesses, risks of bias, generalisability, when not to use the model."),
    CardItem("uncertainty", "Uncertainty", "–",
             "Conformal prediction sets: coverage and share of patients referred."),
    CardItem("explainability", "Explainability", "–",
             "How individual predictions are explained; most influential predictors."),
)
TRIPOD_KEYS = tuple(item.key for item in ITEMS if item.tripod != "–")


def _is_estimate(value: Any) -> bool:
    return isinstance(value, Mapping) and {"value", "low", "high"} <= set(value)


def _format(value: Any) -> str:
    """One value as text: estimates with CIs, numbers to 3 decimals, lists joined."""
    if hasattr(value, "to_dict") and not isinstance(value, Mapping):
        value = value.to_dict()
    if _is_estimate(value) and value.get("not_meaningful"):
        return f"not meaningful ({value['not_meaningful']})"
    if _is_estimate(value):
        return f"{value['value']:.3f} (95% CI {value['low']:.3f}–{value['high']:.3f})"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ", ".join(_format(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_format(v)}" for k, v in value.items())
    return str(value)


def _plain(value: Any) -> Any:
    """JSON-ready form of an entry (estimate objects become dicts)."""
    if hasattr(value, "to_dict") and not isinstance(value, Mapping):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


@dataclass
class ModelCard:
    """A model card: title, one entry per item, and free-form details (model, version)."""

    title: str
    items: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls, title: str, fields: Mapping[str, Any], details: Mapping[str, Any] | None = None
    ) -> ModelCard:
        """Check ``fields`` against the known items and fill the gaps as not reported.

        Raises
        ------
        ValueError
            If ``fields`` names an item that does not exist.
        """
        known = {item.key for item in ITEMS}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(
                f"unknown model card fields {unknown}; expected some of {sorted(known)}"
            )
        items = {
            item.key: _plain(fields[item.key]) if _filled(fields.get(item.key)) else NOT_REPORTED
            for item in ITEMS
        }
        return cls(title=title, items=items, details=_plain(dict(details or {})))

    @property
    def missing(self) -> list[str]:
        """Items not reported."""
        return [key for key, value in self.items.items() if value == NOT_REPORTED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "standard": "TRIPOD+AI (Collins et al., BMJ 2024;385:e078378)",
            "details": self.details,
            "items": {
                item.key: {"title": item.title, "tripod_ai": item.tripod,
                           "content": self.items[item.key]}
                for item in ITEMS
            },
            "not_reported": self.missing,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_markdown(self) -> str:
        lines = [f"# Model card: {self.title}", "",
                 "Reported following TRIPOD+AI (Collins et al., BMJ 2024;385:e078378).", ""]
        lines += [f"- **{k}**: {_format(v)}" for k, v in self.details.items()]
        for item in ITEMS:
            ref = f" (TRIPOD+AI {item.tripod})" if item.tripod != "–" else ""
            lines += ["", f"## {item.title}{ref}", ""]
            lines += _markdown_body(self.items[item.key])
        return "\n".join(lines) + "\n"

    def sections(self) -> list[Section]:
        """One report section per item, titled ``Model card: <item>``."""
        out = []
        for item in ITEMS:
            content = self.items[item.key]
            ref = f"TRIPOD+AI {item.tripod}. " if item.tripod != "–" else ""
            intro = f'<p class="note">{escape(ref + item.asks)}</p>'
            if content == NOT_REPORTED:
                body = intro + callout(f"{NOT_REPORTED} Add it to the study spec or card fields.")
            else:
                body = intro + _html_body(content)
            out.append(Section(f"Model card: {item.title}", body))
        return out

    def extra_files(self) -> dict[str, bytes]:
        """``model_card.md`` and ``model_card.json`` for :func:`medpredict.artifact.save_model`."""
        return {
            MODEL_CARD_MD: self.to_markdown().encode("utf-8"),
            MODEL_CARD_JSON: self.to_json().encode("utf-8"),
        }


def _filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _markdown_body(content: Any) -> list[str]:
    if isinstance(content, Mapping):
        return [f"- {k}: {_format(v)}" for k, v in content.items()]
    if isinstance(content, list):
        return [f"- {_format(v)}" for v in content]
    return [str(content)]


def _html_body(content: Any) -> str:
    if isinstance(content, Mapping):
        return table([[k, _format(v)] for k, v in content.items()], ["item", "value"])
    if isinstance(content, list):
        return "<ul>" + "".join(f"<li>{escape(_format(v))}</li>" for v in content) + "</ul>"
    return f"<p>{escape(content)}</p>"
