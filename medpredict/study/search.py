"""Budgeted hyperparameter search across candidate models (Optuna, wall-time limited).

:func:`search` spends a wall-time budget (``"10m"``, ``"90s"``) on cross-validated
trials. The first trial of every candidate uses its registered defaults; after that
Optuna's TPE sampler chooses the model and its hyperparameters. A trial that would
overrun the budget is stopped between folds and discarded. Every trial runs the
study's cross-validation loop (:func:`medpredict.study.validation.cross_validate`),
which fits each fold's model on that fold's training rows only (inner early stopping
and stacking included) and names the table rows in an error raised inside a fold.

The leaderboard holds each candidate's best trial: the selection metric and Brier
score with bootstrap 95% CIs from its out-of-fold predictions, the trials run and
the seconds spent. The best trial's score is the maximum over many trials and is
therefore optimistic; judge the chosen model on data the search never saw.

Examples
--------
>>> from sklearn.datasets import load_breast_cancer
>>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
>>> result = search(["logistic_regression"], X, y, budget="2s", cv=3, n_boot=50, quiet=True)
>>> result.best.name, result.best.metric.value > 0.98
('logistic_regression', True)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from rich.console import Console

from medpredict.evaluation.bootstrap import Estimate, bootstrap
from medpredict.evaluation.metrics import auroc, average_precision, brier, multiclass_metrics
from medpredict.evaluation.splits import Fold, internal_folds
from medpredict.models.registry import raw_member
from medpredict.progress import StudyProgress
from medpredict.report.html import Section, callout, table
from medpredict.study.results import CandidateFailure, FoldError
from medpredict.study.validation import cross_validate

SearchSpace = Callable[[optuna.Trial], dict[str, Any]]

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(budget: str | float) -> float:
    """Seconds in a budget such as ``"10m"``, ``"90s"``, ``"1h30m"`` or ``600``.

    Examples
    --------
    >>> parse_budget("1h30m"), parse_budget("90s"), parse_budget(2.5)
    (5400.0, 90.0, 2.5)
    """
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        seconds = float(budget)
    else:
        text = str(budget).strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"budget {budget!r} is not a duration; expected e.g. '90s', '10m', '1h30m'"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"budget must be positive, got {budget!r}")
    return seconds


def _mlp_space(trial: optuna.Trial) -> dict[str, Any]:
    width = trial.suggest_categorical("deep_mlp.width", [32, 64, 128, 256])
    depth = trial.suggest_int("deep_mlp.depth", 1, 3)
    return {
        "hidden_layer_sizes": tuple(max(8, width // 2**i) for i in range(depth)),
        "dropout": trial.suggest_float("deep_mlp.dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("deep_mlp.learning_rate", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("deep_mlp.weight_decay", 1e-6, 1e-2, log=True),
    }


def _resnet_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "width": trial.suggest_categorical("deep_resnet.width", [32, 64, 128]),
        "n_blocks": trial.suggest_int("deep_resnet.n_blocks", 1, 3),
        "dropout": trial.suggest_float("deep_resnet.dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("deep_resnet.learning_rate", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("deep_resnet.weight_decay", 1e-6, 1e-2, log=True),
    }


SEARCH_SPACES: dict[str, SearchSpace] = {
    "logistic_regression": lambda t: {
        "C": t.suggest_float("logistic_regression.C", 1e-3, 1e2, log=True)
    },
    "random_forest": lambda t: {
        "min_samples_leaf": t.suggest_int("random_forest.min_samples_leaf", 1, 20, log=True),
        "max_features": t.suggest_float("random_forest.max_features", 0.1, 1.0),
    },
    "svm": lambda t: {
        "C": t.suggest_float("svm.C", 1e-2, 1e2, log=True),
        "gamma": t.suggest_float("svm.gamma", 1e-4, 1.0, log=True),
    },
    "lightgbm": lambda t: {
        "num_leaves": t.suggest_int("lightgbm.num_leaves", 3, 63, log=True),
        "learning_rate": t.suggest_float("lightgbm.learning_rate", 0.01, 0.2, log=True),
        "n_estimators": t.suggest_int("lightgbm.n_estimators", 50, 500, log=True),
        "min_child_samples": t.suggest_int("lightgbm.min_child_samples", 5, 60, log=True),
        "reg_lambda": t.suggest_float("lightgbm.reg_lambda", 1e-3, 10.0, log=True),
        "colsample_bytree": t.suggest_float("lightgbm.colsample_bytree", 0.3, 1.0),
    },
    "deep_mlp": _mlp_space,
    "deep_resnet": _resnet_space,
    "stacking": lambda t: {"alpha": t.suggest_float("stacking.alpha", 1e-4, 1.0, log=True)},
}


@dataclass
class LeaderboardRow:
    """One candidate's best trial.

    ``metric`` and ``brier`` are bootstrap estimates from the best trial's out-of-fold
    probabilities (``oof_proba``); ``trials`` counts finished trials and ``seconds`` is
    the wall time spent on the candidate in all its trials, including stopped ones.
    """

    name: str
    params: dict[str, Any]
    metric: Estimate
    brier: Estimate
    trials: int
    seconds: float
    oof_proba: np.ndarray = field(repr=False)


class SearchFailedError(RuntimeError):
    """No trial finished; ``failures`` lists the candidates that raised."""

    def __init__(self, message: str, failures: list[CandidateFailure]) -> None:
        super().__init__(message)
        self.failures = failures


@dataclass
class SearchResult:
    """The leaderboard (best first) and how to rebuild the winning configuration."""

    metric: str
    budget_seconds: float
    seconds: float
    leaderboard: list[LeaderboardRow]
    folds: list[Fold] = field(repr=False)
    study: optuna.Study = field(repr=False)
    _build: Callable[[str, dict[str, Any]], Any] = field(repr=False)
    failures: list[CandidateFailure] = field(default_factory=list)

    @property
    def best(self) -> LeaderboardRow:
        return self.leaderboard[0]

    @property
    def best_estimator(self) -> Any:
        """An unfitted estimator configured like the best trial."""
        return self._build(self.best.name, self.best.params)


_LOWER_IS_BETTER = {"brier", "log_loss"}


def _scorer(metric: str, n_classes: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """``metric(y_index, proba)``; the names match the study spec's selection metrics."""
    if metric not in ("auroc", "auprc", "brier", "log_loss", "macro_f1"):
        raise ValueError(
            f"metric must be 'auroc', 'auprc', 'brier', 'log_loss' or 'macro_f1', got {metric!r}"
        )
    if n_classes > 2 or metric in ("log_loss", "macro_f1"):
        if metric == "auprc":
            raise ValueError("metric 'auprc' is for binary outcomes")
        return lambda y, proba: multiclass_metrics(y, proba)[metric]
    binary = {"auroc": auroc, "auprc": average_precision, "brier": brier}[metric]
    return lambda y, proba: binary(y, proba[:, 1])


def _as_folds(
    cv: int | Sequence[Fold] | Any, X: Any, y_index: np.ndarray, groups: Any, seed: int
) -> list[Fold]:
    if isinstance(cv, int):
        return internal_folds(y_index, groups, cv, seed)
    if hasattr(cv, "split"):
        return list(cv.split(X, y_index, groups))
    return [(np.asarray(train), np.asarray(test)) for train, test in cv]


def search(
    candidates: Sequence[str],
    X: Any,
    y: Any,
    groups: Any = None,
    cv: int | Sequence[Fold] | Any = 5,
    budget: str | float = "10m",
    metric: str = "auroc",
    seed: int = 0,
    class_weight: str | None = None,
    preprocessor: Any = None,
    n_boot: int = 500,
    quiet: bool = False,
    console: Console | None = None,
    row_numbers: np.ndarray | None = None,
    progress: StudyProgress | None = None,
) -> SearchResult:
    """Search models and hyperparameters within a wall-time budget.

    Parameters
    ----------
    candidates : registered model names (see :func:`medpredict.models.available_models`);
        those in :data:`SEARCH_SPACES` are tuned, the others run with their defaults.
    X : feature table (raw DataFrame; models that need numbers get ``preprocessor``).
    y : class labels.
    groups : optional patient id per row; folds and bootstrap keep a patient together.
    cv : number of folds, a scikit-learn splitter, or a list of (train, test) indices.
    budget : wall time, e.g. ``"10m"``, ``"90s"`` or seconds.
    metric : ``"auroc"`` (macro one-vs-rest for multi-class), ``"auprc"`` (binary),
        ``"brier"``, ``"log_loss"`` or ``"macro_f1"``.
    seed : seeds models, folds and the sampler.
    class_weight : passed to every model factory.
    preprocessor : unfitted transformer placed before models without ``raw_input``;
        default :class:`~medpredict.models.deep.TabularEncoder` (one-hot).
    n_boot : bootstrap resamples for the leaderboard's confidence intervals.
    quiet : no progress bar.
    console : where the progress bar is drawn (default standard error).
    row_numbers : the table row of each row of ``X``, for the rows that errors raised
        inside a fold name (default: 1-based positions in ``X``).
    progress : the study's progress display, to draw the search as one of its stages
        (``quiet`` and ``console`` then do not apply).

    A candidate whose default trial raises is left out of the search and listed in
    ``SearchResult.failures``; a tuned trial that raises is discarded.

    Returns
    -------
    SearchResult with the leaderboard (best first) and ``best_estimator`` (unfitted).
    """
    if not candidates:
        raise ValueError("search needs at least one candidate model name")
    seconds = parse_budget(budget)
    started = time.perf_counter()
    deadline = started + seconds
    y = np.asarray(y)
    classes, y_index = np.unique(y, return_inverse=True)
    groups_array = None if groups is None else np.asarray(groups)
    folds = _as_folds(cv, X, y_index, groups_array, seed)
    score = _scorer(metric, classes.size)
    sign = -1.0 if metric in _LOWER_IS_BETTER else 1.0
    n_samples = len(y)
    failures: dict[str, CandidateFailure] = {}

    def build(name: str, params: dict[str, Any]) -> Any:
        return raw_member(name, seed, class_weight, n_samples, preprocessor, **params)

    for name in candidates:  # fail fast on unknown names or bad settings
        build(name, {})

    oof_by_trial: dict[int, np.ndarray] = {}
    durations: dict[str, list[float]] = {name: [] for name in candidates}  # finished trials
    spent = dict.fromkeys(candidates, 0.0)  # all trials, finished or stopped
    display = nullcontext(progress)
    if progress is None:
        progress = StudyProgress(quiet=quiet, console=console)
        display = progress
    task = progress.stage("searching", total=seconds, unit="s of the budget")

    def tick(text: str) -> None:
        progress.update(task, min(seconds, time.perf_counter() - started), text)

    def objective(trial: optuna.Trial) -> float:
        name = trial.suggest_categorical("model", list(candidates))
        space = SEARCH_SPACES.get(name)
        params = {} if trial.user_attrs.get("defaults") or space is None else space(trial)
        trial.set_user_attr("params", {k: _jsonable(v) for k, v in params.items()})
        if name in failures:
            raise optuna.TrialPruned(f"{name} failed with its defaults")
        known = durations[name]
        if known and time.perf_counter() + min(known) > deadline:
            raise optuna.TrialPruned("not enough budget left for this candidate")
        estimator = build(name, params)
        trial_start = time.perf_counter()

        def before_fold(k: int) -> None:
            if time.perf_counter() > deadline:
                raise optuna.TrialPruned("the budget ran out during this trial")
            tick(f"trial {trial.number}: {name} fold {k + 1}/{len(folds)}")

        try:
            run = cross_validate(
                estimator,
                X,
                y_index,
                folds,
                classes.size,
                groups_array,
                row_numbers,
                before_fold=before_fold,
            )
        except FoldError as err:  # the candidate is reported, the search goes on
            if trial.user_attrs.get("defaults"):
                failures[name] = CandidateFailure(name, str(err), err.rows)
            raise optuna.TrialPruned(f"{name} failed: {err}") from err
        finally:
            spent[name] += time.perf_counter() - trial_start
        durations[name].append(time.perf_counter() - trial_start)
        oof_by_trial[trial.number] = run.oof
        return sign * score(y_index, run.oof)

    def stop_when_spent(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = _best_text(study, metric, sign)
        tick(f"{len(study.trials)} trials{best}")
        cheapest = min((min(d) for d in durations.values() if d), default=0.0)
        if time.perf_counter() + cheapest > deadline or len(failures) == len(candidates):
            study.stop()

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=len(candidates) + 5)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for name in candidates:
            study.enqueue_trial({"model": name}, user_attrs={"defaults": True})
        with display:
            study.optimize(
                objective,
                timeout=seconds,
                callbacks=[stop_when_spent],
                gc_after_trial=False,
            )
    finally:
        optuna.logging.set_verbosity(verbosity)
    leaderboard = _leaderboard(
        study, oof_by_trial, spent, y_index, groups_array, metric, sign, n_boot, seed
    )
    if not leaderboard and failures:
        listed = "; ".join(f"{f.name}: {f.reason}" for f in failures.values())
        message = f"no candidate finished a trial ({listed})"
        raise SearchFailedError(message, list(failures.values()))
    if not leaderboard:
        raise RuntimeError(
            f"no trial finished within the budget of {seconds:.0f}s; "
            "increase the budget or use fewer folds"
        )
    return SearchResult(
        metric=metric,
        budget_seconds=seconds,
        seconds=time.perf_counter() - started,
        leaderboard=leaderboard,
        folds=folds,
        study=study,
        _build=build,
        failures=list(failures.values()),
    )


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _best_text(study: optuna.Study, metric: str, sign: float) -> str:
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return ""
    best = max(done, key=lambda t: t.value)
    return f", best {best.params['model']} {metric}={sign * best.value:.3f}"


def _leaderboard(
    study: optuna.Study,
    oof_by_trial: dict[int, np.ndarray],
    spent: dict[str, float],
    y_index: np.ndarray,
    groups: np.ndarray | None,
    metric: str,
    sign: float,
    n_boot: int,
    seed: int,
) -> list[LeaderboardRow]:
    n_classes = next(iter(oof_by_trial.values())).shape[1] if oof_by_trial else 2
    score = _scorer(metric, n_classes)
    brier_of = _scorer("brier", n_classes)

    def both(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        return {metric: score(y, proba), "brier": brier_of(y, proba)}

    best: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in study.trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        name = trial.params["model"]
        if name not in best or trial.value > best[name].value:
            best[name] = trial
    rows = []
    for name, trial in best.items():
        proba = oof_by_trial[trial.number]
        estimates = bootstrap(both, y_index, proba, n_boot=n_boot, seed=seed, groups=groups)
        rows.append(
            LeaderboardRow(
                name=name,
                params=dict(trial.user_attrs["params"]),
                metric=estimates[metric],
                brier=estimates["brier"],
                trials=sum(
                    1
                    for t in study.trials
                    if t.params.get("model") == name and t.state == optuna.trial.TrialState.COMPLETE
                ),
                seconds=spent[name],
                oof_proba=proba,
            )
        )
    rows.sort(key=lambda r: sign * r.metric.value, reverse=True)
    return rows


def leaderboard_section(result: SearchResult, title: str = "Hyperparameter search") -> Section:
    """The leaderboard as a report section: metric and Brier with CIs, trials, seconds."""
    rows = [
        [
            rank,
            row.name,
            str(row.metric),
            str(row.brier),
            row.trials,
            f"{row.seconds:.1f}",
            ", ".join(f"{k}={_short(v)}" for k, v in row.params.items()) or "defaults",
        ]
        for rank, row in enumerate(result.leaderboard, start=1)
    ]
    header = [
        "rank",
        "model",
        f"{result.metric} (95% CI)",
        "Brier (95% CI)",
        "trials",
        "seconds",
        "best settings",
    ]
    note = callout(
        f"{len(result.study.trials)} trials in {result.seconds:.0f}s of a "
        f"{result.budget_seconds:.0f}s budget. Each row is the candidate's best trial; "
        "its out-of-fold score is the best of several tries and so slightly optimistic.",
        kind="note",
    )
    return Section(title, table(rows, header, highlight=0) + note)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
