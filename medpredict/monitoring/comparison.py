"""Champion versus challenger: two binary risk models on the same recent patients.

:func:`champion_challenger` scores the deployed model (champion) and a candidate
(challenger, e.g. an update from :mod:`medpredict.monitoring.updating`) on the same
patients, with paired bootstrap intervals of the differences, and says which to keep.
Results hold only summary numbers, never patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import auroc, brier, calibration_intercept_slope
from medpredict.monitoring.binary import check_model, outcomes, risk

COMPARED = ("auroc", "brier", "calibration_intercept", "calibration_slope")


@dataclass(frozen=True)
class ChampionChallengerResult:
    """Both models scored on the same recent patients, and their paired differences.

    Attributes
    ----------
    champion, challenger : metric name -> :class:`Estimate` (bootstrap 95% CI), for
        ``auroc``, ``brier``, ``calibration_intercept`` and ``calibration_slope``.
    difference : the same metrics, challenger minus champion, from the same resamples
        (a paired bootstrap).
    preferred : ``"challenger"``, ``"champion"`` or ``"no clear difference"``.
    verdict : the decision in words, with the numbers behind it.
    n, events, n_boot : rows, events and bootstrap resamples.
    """

    champion: dict[str, Estimate]
    challenger: dict[str, Estimate]
    difference: dict[str, Estimate]
    preferred: str
    verdict: str
    n: int
    events: int
    n_boot: int

    def to_dict(self) -> dict[str, Any]:
        def plain(metrics: dict[str, Estimate]) -> dict[str, dict[str, float]]:
            return {k: v.to_dict() for k, v in metrics.items()}

        return {
            "champion": plain(self.champion),
            "challenger": plain(self.challenger),
            "difference": plain(self.difference),
            "preferred": self.preferred,
            "verdict": self.verdict,
            "n": self.n,
            "events": self.events,
            "n_boot": self.n_boot,
        }


def _one_model(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    intercept, slope = calibration_intercept_slope(y, p)
    return {
        "auroc": auroc(y, p),
        "brier": brier(y, p),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
    }


def _paired(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> dict[str, float]:
    a, b = _one_model(y, champion), _one_model(y, challenger)
    out = {f"champion:{k}": v for k, v in a.items()}
    out.update({f"challenger:{k}": v for k, v in b.items()})
    out.update({f"difference:{k}": b[k] - a[k] for k in COMPARED})
    return out


def champion_challenger(
    champion: Any,
    challenger: Any,
    X: Any,
    y: Any,
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> ChampionChallengerResult:
    """Compare the deployed model (champion) with a candidate (challenger) on recent data.

    Both models score the same patients; AUROC, Brier score, calibration intercept
    (calibration-in-the-large, ideal 0) and calibration slope (ideal 1) are computed for
    each, and their differences (challenger minus champion) get percentile intervals
    from one stratified bootstrap that resamples the same patients for both models
    (:func:`medpredict.evaluation.bootstrap.bootstrap`), so the interval of a
    difference reflects only how the models disagree.

    The verdict: the challenger is preferred when its Brier score is lower with an
    interval of the difference excluding 0 and its AUROC is not significantly lower;
    the champion is preferred when the challenger is significantly worse on Brier score
    or AUROC; otherwise there is no clear difference, and keeping the champion avoids
    the cost of a change. The data must not have been used to fit either model (a
    challenger fitted on them looks better than it is).

    Parameters
    ----------
    champion, challenger : fitted binary classifiers with ``predict_proba``.
    X, y : recent data; ``y`` as the champion's class labels or 0/1.
    n_boot : bootstrap resamples.
    seed : bootstrap seed.
    groups : optional patient id per row; resamples whole patients when given.

    Returns
    -------
    ChampionChallengerResult

    Examples
    --------
    A model compared with itself:

    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.naive_bayes import GaussianNB
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = GaussianNB().fit(X[:300], y[:300])
    >>> result = champion_challenger(model, model, X[300:], y[300:], n_boot=100)
    >>> result.preferred, result.difference["brier"].value
    ('no clear difference', 0.0)
    """
    check_model(champion)
    check_model(challenger)
    champion_classes = getattr(champion, "classes_", None)
    challenger_classes = getattr(challenger, "classes_", None)
    if (
        champion_classes is not None
        and challenger_classes is not None
        and list(np.asarray(champion_classes)) != list(np.asarray(challenger_classes))
    ):
        raise ValueError(
            f"champion and challenger have different classes: "
            f"{list(champion_classes)} and {list(challenger_classes)}"
        )
    events = outcomes(champion, X, y)
    a, b = risk(champion, X), risk(challenger, X)
    estimates = bootstrap(_paired, events, a, b, n_boot=n_boot, seed=seed, groups=groups)
    split: dict[str, dict[str, Estimate]] = {"champion": {}, "challenger": {}, "difference": {}}
    for key, estimate in estimates.items():
        part, metric = key.split(":")
        split[part][metric] = estimate
    preferred, verdict = _verdict(split["champion"], split["challenger"], split["difference"])
    return ChampionChallengerResult(
        champion=split["champion"],
        challenger=split["challenger"],
        difference=split["difference"],
        preferred=preferred,
        verdict=verdict,
        n=int(events.size),
        events=int(events.sum()),
        n_boot=n_boot,
    )


def _interval(e: Estimate) -> str:
    return f"{e.value:+.3f} (95% CI {e.low:+.3f} to {e.high:+.3f})"


def _verdict(
    champion: dict[str, Estimate], challenger: dict[str, Estimate], diff: dict[str, Estimate]
) -> tuple[str, str]:
    brier_d, auroc_d = diff["brier"], diff["auroc"]
    brier_better, brier_worse = brier_d.high < 0, brier_d.low > 0
    auroc_better, auroc_worse = auroc_d.low > 0, auroc_d.high < 0
    numbers = (
        f"Brier score difference {_interval(brier_d)}, AUROC difference {_interval(auroc_d)} "
        f"(challenger minus champion)"
    )
    calibration = (
        f" Calibration intercept: champion {champion['calibration_intercept'].value:+.2f}, "
        f"challenger {challenger['calibration_intercept'].value:+.2f} (ideal 0); slope: "
        f"champion {champion['calibration_slope'].value:.2f}, challenger "
        f"{challenger['calibration_slope'].value:.2f} (ideal 1)."
    )
    if brier_better and not auroc_worse:
        also = " and discriminates better" if auroc_better else ""
        return "challenger", (
            f"The challenger is better: its risks are closer to the outcomes{also}; "
            f"{numbers}." + calibration
        )
    if brier_worse or auroc_worse:
        if brier_better:
            return "no clear difference", (
                f"Mixed result: the challenger's Brier score is lower but it discriminates "
                f"worse; {numbers}. Keep the champion until the trade-off is judged." + calibration
            )
        return "champion", (
            f"The champion is better: the challenger is significantly worse; {numbers}."
            + calibration
        )
    hint = (
        " The challenger ranks patients better; recalibrating it may make it the better model."
        if auroc_better
        else ""
    )
    return "no clear difference", (
        f"No clear difference: the intervals of the Brier score and AUROC differences both "
        f"include 0; {numbers}. Keep the champion.{hint}" + calibration
    )
