"""Risk bands from a model's operating thresholds.

A model saved by a study carries ``thresholds`` (label -> risk), the operating
points its spec asked for. Sorted, ``n`` thresholds cut the risk scale into
``n + 1`` bands: one threshold gives low/high, two give low/moderate/high, three
add "very high". Each band maps to the HL7 ``risk-probability`` code FHIR uses.

Examples
--------
>>> bands = risk_bands({"sensitivity_0.9": 0.12, "risk_0.3": 0.3})
>>> [b.label for b in bands]
['low', 'moderate', 'high']
>>> band_for(0.2, bands).label
'moderate'
"""

from __future__ import annotations

from dataclasses import dataclass

_NAMES = {
    0: ["unbanded"],
    1: ["low", "high"],
    2: ["low", "moderate", "high"],
    3: ["low", "moderate", "high", "very high"],
}
_FHIR_CODES = {"low": "low", "moderate": "moderate", "high": "high", "very high": "high"}


@dataclass(frozen=True)
class Band:
    """A risk interval ``[lower, upper)`` with a label and the threshold that opens it."""

    label: str
    lower: float
    upper: float
    opened_by: str | None

    @property
    def fhir_code(self) -> str | None:
        """Code in http://terminology.hl7.org/CodeSystem/risk-probability, if one fits."""
        return _FHIR_CODES.get(self.label)

    def to_dict(self) -> dict[str, object]:
        """JSON form used in API responses."""
        return {"label": self.label, "lower": self.lower, "upper": self.upper,
                "opened_by": self.opened_by}


def risk_bands(thresholds: dict[str, float] | None) -> list[Band]:
    """Bands cut at the sorted ``thresholds`` (label -> risk in (0, 1))."""
    cuts = sorted((float(v), str(k)) for k, v in (thresholds or {}).items())
    names = _NAMES.get(len(cuts), [f"band {i + 1}" for i in range(len(cuts) + 1)])
    edges = [(0.0, None), *cuts, (1.0, None)]
    return [
        Band(names[i], edges[i][0], edges[i + 1][0], edges[i][1]) for i in range(len(cuts) + 1)
    ]


def band_for(risk: float, bands: list[Band]) -> Band:
    """The band holding ``risk`` (the last band includes 1.0)."""
    for band in bands:
        if risk < band.upper:
            return band
    return bands[-1]
