"""scikit-learn's estimator checks over every registered model and every medpredict estimator.

Models come from the registry (whatever it holds when the tests are collected); the
other estimators (transformers, encoders, calibration and ensemble wrappers) are found
by walking the ``medpredict`` package. Both are shrunk to tiny, fast settings: a few
epochs, narrow layers, three trees, two inner folds, one thread. The checks use
scikit-learn's own synthetic data by design. Checks an estimator cannot pass are listed
in ``EXPECTED_FAILURES`` with the reason; a reason starting ``contract gap:`` marks a
violation still to be fixed in that estimator.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable
from typing import Any
from unittest import SkipTest

import numpy as np
import pytest
from sklearn.base import BaseEstimator, is_classifier
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import estimator_checks_generator
from threadpoolctl import threadpool_limits

import medpredict
from medpredict.data.errors import DataError
from medpredict.encoders.genes import GeneSelector, load_golub
from medpredict.imaging.loader import ImageLoader
from medpredict.models.registry import available_models, is_survival_model, make_model
from medpredict.signals.loader import SignalLoader

# Settings that make any estimator tiny, applied to it and to every estimator inside it.
FAST = {"n_estimators": 3, "n_jobs": 1, "n_threads": 1, "cv": 2, "epochs": 3, "source_epochs": 1}
FAST_NETWORK = {
    "max_epochs": 4, "patience": 3, "batch_size": 512, "learning_rate": 0.1,
    "hidden_layer_sizes": (8,), "hidden": 8, "width": 8, "code_size": 4, "embedding_dim": 2,
}
# Registered models that need arguments, or would repeat another model's members.
MODEL_ARGS: dict[str, dict[str, Any]] = {
    "early_fusion": {"modalities": {"values": {"kind": "tabular", "columns": ["x0", "x1"]}}},
    "late_fusion": {"modalities": {"values": {"kind": "tabular", "columns": ["x0", "x1"]}}},
    # hybrid_ensemble already runs the deep member; two classical members suffice here
    "stacking": {"members": ("logistic_regression", "random_forest")},
    "soft_voting": {"members": ("logistic_regression", "random_forest")},
}
# Estimator classes that need constructor arguments.
CONSTRUCTORS: dict[str, Callable[[type], BaseEstimator]] = {
    "calibration.LogOddsScores": lambda cls: cls(LogisticRegression()),
    "ensemble.AveragedImageModels": lambda cls: cls(
        [("strong", LogisticRegression()), ("weak", LogisticRegression(C=0.01))]
    ),
}
# medpredict estimators that are neither models nor transformers, or cannot be fitted.
NOT_CHECKED = {
    "conformal.ConformalSets": "fits on predicted probabilities and outcomes, makes sets",
    "cusum.CuSumDetector": "a detector over a person's daily wearable table, not a model",
    "multivariate.BaselineDeviationForest": "a detector over daily wearable tables",
    "overnight.OvernightRHRAlert": "a detector over a person's daily wearable table",
    **dict.fromkeys(
        ("models.PenalizedCox", "models.GradientBoostedCox", "models.SurvivalEnsemble",
         "deep.DeepSurv", "deep.LogisticHazard"),
        "a survival model: fits a structured (event, time) outcome, which scikit-learn's "
        "checks do not generate; tests/test_survival.py checks its contract",
    ),
    "explain.RiskByHorizon": (
        "reads an already fitted survival model at one horizon for explanations; never fitted"
    ),
    **dict.fromkeys(
        ("learners.TLearner", "learners.SLearner", "learners.XLearner", "learners.DRLearner"),
        "a treatment-effect learner: fit(X, treatment, y) and effect(X), not the estimator "
        "API's fit(X, y); tests/test_effects.py checks it on data with known effects",
    ),
    **dict.fromkeys(
        ("updating.RecalibrationInTheLarge", "updating.LogisticRecalibration",
         "updating.ModelRevision", "updating.Refit"),
        "an update of an already fitted model: fit learns from new patients how to correct "
        "its risks, on the features the fitted model reads; tests/test_updating.py checks it",
    ),
    "model.EffectModel": (
        "preprocessing and a treatment-effect learner: fit(X, treatment, y) and benefit(X); "
        "tests/test_effects.py checks it"
    ),
    "learners.SelectedModel": (
        "chooses among scikit-learn regressors by cross-validated error and refits the "
        "choice; tests/test_effects.py checks the choice, the refit and the effects it gives"
    ),
    "fastpath.FastColumnTransformer": (
        "made from an already fitted ColumnTransformer by fast_preprocessor; fitting is "
        "scikit-learn's ColumnTransformer"
    ),
}


def shrink(estimator: Any) -> Any:
    """Set the fast settings on ``estimator`` and on every estimator in its parameters."""
    if isinstance(estimator, list | tuple):
        for item in estimator:
            shrink(item)
        return estimator
    if isinstance(estimator, BaseEstimator):
        params = estimator.get_params(deep=False)
        for value in params.values():
            shrink(value)
        network = "max_epochs" in params or "epochs" in params
        settings = FAST | (FAST_NETWORK if network else {})
        estimator.set_params(**{k: v for k, v in settings.items() if k in params})
    return estimator


def _short_name(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def medpredict_estimator_classes() -> dict[str, type]:
    """Every public estimator class defined in medpredict, by ``module.Class``."""
    found = {}
    for info in pkgutil.walk_packages(medpredict.__path__, "medpredict."):
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and issubclass(cls, BaseEstimator)
                and cls.__module__ == info.name
                and not name.startswith("_")
            ):
                found[_short_name(cls)] = cls
    return found


def checked_estimators() -> dict[str, BaseEstimator]:
    """Registered models by name, then the other medpredict estimators by ``module.Class``."""
    estimators = {
        name: shrink(make_model(name, seed=0, **MODEL_ARGS.get(name, {})))
        for name in available_models()
        if not is_survival_model(name)
    }
    model_types = {type(model) for model in estimators.values()}
    for name, cls in medpredict_estimator_classes().items():
        if cls in model_types or name in NOT_CHECKED:
            continue
        estimators[name] = shrink(CONSTRUCTORS[name](cls) if name in CONSTRUCTORS else cls())
    return estimators


ESTIMATORS = checked_estimators()
_NAMES = {id(estimator): name for name, estimator in ESTIMATORS.items()}


def reading_through(loader: type) -> dict[str, bool]:
    """Registered models whose pipeline reads its input with ``loader`` first, and whether
    each has a ``decision_function`` (only then is its consistency with the probabilities
    checked)."""
    return {
        name: hasattr(model, "decision_function")
        for name, model in ESTIMATORS.items()
        if isinstance(model, Pipeline) and isinstance(model.steps[0][1], loader)
    }


# Why a check cannot pass: the estimator reads another kind of input than the checks' arrays.
IMAGE_FILES = "reads image file references from a column, not the checks' numeric arrays"
IMAGE_ARRAYS = (
    "takes image arrays (n, height, width) or (n, channels, height, width), not a feature matrix"
)
SIGNAL_FILES = "reads ECG signal references from a column, not the checks' numeric arrays"
TEXT = "reads free-text columns, not the checks' numeric arrays"
DATAFRAME = "takes a pandas DataFrame whose named columns make up each modality, not arrays"
READINGS = "reads minute heart-rate readings (person, time and heart-rate columns), not arrays"
SHORT_HRV = "HRV needs ECG windows long enough to hold heartbeats, not rows of a few values"
SHORT_WINDOWS = (
    "ECG windows need at least 128 samples to pass the network's pooling; the checks' rows "
    "hold 1-10 values"
)
BINARY = "an AF model is binary and refuses three or more classes"
# ... or the estimator (or the library it wraps) behaves as intended in a way the check forbids.
NET_WEIGHTS = (
    "early stopping holds out a random share of rows and batches are drawn per row, "
    "so a weight of 2 is not the same as a duplicated row"
)
FLOAT32_BATCHES = "float32 matrix products differ in the last bits (~1e-7) between batch sizes"
FLOAT32_OUTPUT = "encodes to float32 for the networks, so float64 input is not preserved"
FOREST_WEIGHTS = (
    "bootstrap samples draw rows, so a weight of 2 is not a duplicated row "
    "(scikit-learn lists the same for RandomForestClassifier)"
)
SVM_WEIGHTS = (
    "the SVM's inner calibration folds can split a duplicated row but not a weight of 2 "
    "(scikit-learn lists the same for SVC)"
)
CALIBRATED_Y_2D = (
    "scikit-learn's CalibratedClassifierCV(ensemble=False) fails on a column-vector y "
    "(IndexError inside scikit-learn)"
)
LGBM_KWARGS = "LightGBM stores its keyword settings (deterministic, verbose) in __init__"
LGBM_ZERO_WEIGHTS = "LightGBM fits all-zero sample weights instead of refusing them"
PIPELINE_STEPS = (
    "scikit-learn's Pipeline fits its steps in place, changing the steps parameter "
    "(scikit-learn lists the same)"
)
BAGGING_DECISION = (
    "BaggingClassifier predicts from averaged probabilities but averages decision_function "
    "separately, so near-ties can rank differently"
)
SVC_READONLY = (
    "scikit-learn's SVC(probability=True) cannot predict_proba from a read-only "
    "(memory-mapped) fitted model"
)
# ... or the estimator breaks the contract: to be fixed in the estimator, then removed here.
UNFITTED_PREDICT = (
    "contract gap: predict reads classes_ before checking the model is fitted "
    "(AttributeError, not NotFittedError)"
)
NO_N_FEATURES = "contract gap: fit does not set n_features_in_"
PREDICT_N_FEATURES = (
    "contract gap: predict/transform do not compare the number of features with n_features_in_"
)
LAZY_FIT = "contract gap: fit learns nothing and does not validate X; X is only read in transform"
NOT_FITTED = (
    "contract gap: the stateless fit sets no fitted attribute and does not declare "
    "requires_fit=False"
)
NAN_TAG = "contract gap: missing values are imputed by design, but the allow_nan tag is not set"
SPARSE = "contract gap: sparse input fails with an error that does not say it is unsupported"
SPARSE_TAG_ACCEPTS = (
    "contract gap: sparse input works (through its members) but the sparse tag is not set"
)
NOT_AN_ARRAY = (
    "contract gap: fit calls np.shape(X), which fails for array-likes that are not ndarrays"
)
ONE_CLASS_WORDING = (
    "contract gap: the one-class error says 'two or more classes; got [1]', not "
    "scikit-learn's 'one class' or '1 sample'"
)
PREDICT_1D = "contract gap: the error for 1-D input lacks scikit-learn's 'Reshape your data'"
OBJECT_TAG = (
    "contract gap: object columns are taken as categories by design, but the string input "
    "tag is not set (so a dict value is not refused)"
)
LIST_INDEX = (
    "contract gap: for a list X the meta-features use list.index as the row index "
    "(getattr(X, 'index') in ensembles.py)"
)
ROW_COUNT = "contract gap: fit does not check that X and y have the same number of rows"
TORCH_ERRORS = "contract gap: empty windows reach torch and fail with a RuntimeError"
ENCODER_COMPLEX = "contract gap: complex values are not refused"
ENCODER_EMPTY = "contract gap: a table without rows or columns is not refused"


def _each(reason: str, checks: str) -> dict[str, str]:
    """``{check_<name>: reason}`` for the space-separated check names (prefix left out)."""
    return {f"check_{name}": reason for name in checks.split()}


_RAW_TABLE_WRAPPER = {
    **_each(NAN_TAG, "estimators_nan_inf"),
    **_each(NOT_AN_ARRAY, "classifier_data_not_an_array"),
    **_each(ONE_CLASS_WORDING, "fit2d_1sample"),
}
_SIGNAL_PIPELINE = {
    **_each(
        SIGNAL_FILES,
        "fit_score_takes_y estimators_overwrite_params "
        "dont_overwrite_parameters estimators_fit_returns_self "
        "readonly_memmap_input n_features_in_after_fitting "
        "positive_only_tag_during_fit estimators_dtypes complex_data "
        "dtype_object estimators_empty_data_messages pipeline_consistency "
        "estimators_nan_inf estimators_pickle f_contiguous_array_estimator "
        "classifier_data_not_an_array classifiers_one_label "
        "classifiers_classes classifiers_train "
        "classifiers_regression_target supervised_y_no_nan supervised_y_2d "
        "methods_sample_order_invariance methods_subset_invariance "
        "fit2d_1sample fit2d_1feature dict_unchanged fit_idempotent "
        "fit_check_is_fitted n_features_in fit2d_predict1d"
    ),
}
_TABULAR_NETWORK = {
    **_each(NET_WEIGHTS, "sample_weight_equivalence_on_dense_data"),
    **_each(FLOAT32_BATCHES, "methods_subset_invariance"),
}
_IMAGE_PIPELINE = {
    **_each(
        IMAGE_FILES,
        "fit_score_takes_y estimators_overwrite_params "
        "dont_overwrite_parameters estimators_fit_returns_self "
        "readonly_memmap_input n_features_in_after_fitting "
        "positive_only_tag_during_fit estimators_dtypes complex_data "
        "dtype_object estimators_empty_data_messages pipeline_consistency "
        "estimators_nan_inf estimators_pickle f_contiguous_array_estimator "
        "classifier_data_not_an_array classifiers_one_label "
        "classifiers_classes classifiers_train classifiers_regression_target "
        "supervised_y_no_nan supervised_y_2d methods_sample_order_invariance "
        "methods_subset_invariance fit2d_1sample fit2d_1feature dict_unchanged "
        "fit_idempotent fit_check_is_fitted n_features_in fit2d_predict1d"
    ),
}
_IMAGE_DECISION = _each(IMAGE_FILES, "decision_proba_consistency")
_FUSION = {
    **_each(
        DATAFRAME,
        "fit_score_takes_y estimators_overwrite_params "
        "dont_overwrite_parameters estimators_fit_returns_self "
        "readonly_memmap_input n_features_in_after_fitting "
        "positive_only_tag_during_fit estimators_dtypes complex_data "
        "dtype_object estimators_empty_data_messages pipeline_consistency "
        "estimators_nan_inf estimator_sparse_tag estimator_sparse_array "
        "estimator_sparse_matrix estimators_pickle "
        "f_contiguous_array_estimator classifier_data_not_an_array "
        "classifiers_one_label classifiers_classes classifiers_train "
        "classifiers_regression_target supervised_y_2d "
        "methods_sample_order_invariance methods_subset_invariance "
        "fit2d_1sample fit2d_1feature dict_unchanged fit_idempotent "
        "fit_check_is_fitted n_features_in fit2d_predict1d requires_y_none"
    ),
    **_each(UNFITTED_PREDICT, "estimators_unfitted"),
}
_RAW_TABLE_ENSEMBLE = {
    **_each(PREDICT_N_FEATURES, "n_features_in_after_fitting"),
    **_each(OBJECT_TAG, "dtype_object"),
    **_each(NAN_TAG, "estimators_nan_inf"),
    **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
    **_each(NOT_AN_ARRAY, "classifier_data_not_an_array"),
    **_each(ONE_CLASS_WORDING, "fit2d_1sample"),
    **_each(PREDICT_1D, "fit2d_predict1d"),
}
_TEXT_PIPELINE = {
    **_each(
        TEXT,
        "fit_score_takes_y estimators_overwrite_params dont_overwrite_parameters "
        "estimators_fit_returns_self readonly_memmap_input "
        "n_features_in_after_fitting positive_only_tag_during_fit estimators_dtypes "
        "complex_data dtype_object estimators_empty_data_messages "
        "pipeline_consistency estimators_nan_inf estimator_sparse_tag "
        "estimator_sparse_array estimator_sparse_matrix estimators_pickle "
        "f_contiguous_array_estimator classifier_data_not_an_array "
        "classifiers_one_label classifiers_classes classifiers_train "
        "classifiers_regression_target supervised_y_no_nan supervised_y_2d "
        "decision_proba_consistency methods_sample_order_invariance "
        "methods_subset_invariance fit2d_1sample fit2d_1feature dict_unchanged "
        "fit_idempotent fit_check_is_fitted n_features_in fit2d_predict1d"
    ),
}
_TEXT_ENCODER = {
    **_each(
        TEXT,
        "fit_score_takes_y estimators_overwrite_params dont_overwrite_parameters "
        "estimators_fit_returns_self readonly_memmap_input "
        "n_features_in_after_fitting positive_only_tag_during_fit estimators_dtypes "
        "complex_data dtype_object estimators_empty_data_messages "
        "pipeline_consistency estimators_nan_inf estimator_sparse_tag "
        "estimator_sparse_array estimator_sparse_matrix estimators_pickle "
        "f_contiguous_array_estimator transformer_data_not_an_array "
        "transformer_general transformer_preserve_dtypes "
        "methods_sample_order_invariance methods_subset_invariance fit2d_1sample "
        "fit2d_1feature dict_unchanged fit_idempotent fit_check_is_fitted "
        "n_features_in fit2d_predict1d"
    ),
}
_SIGNAL_READER = {
    **_each(
        SIGNAL_FILES,
        "fit_score_takes_y estimators_overwrite_params "
        "dont_overwrite_parameters estimators_fit_returns_self "
        "readonly_memmap_input n_features_in_after_fitting "
        "positive_only_tag_during_fit estimators_dtypes complex_data "
        "dtype_object estimators_empty_data_messages pipeline_consistency "
        "estimators_nan_inf estimators_pickle f_contiguous_array_estimator "
        "transformer_data_not_an_array transformer_general "
        "transformer_preserve_dtypes methods_sample_order_invariance "
        "methods_subset_invariance fit2d_1sample fit2d_1feature "
        "dict_unchanged fit_idempotent fit_check_is_fitted n_features_in "
        "fit2d_predict1d"
    ),
}
_WINDOW_NETWORK = {
    **_each(
        BINARY,
        "fit_score_takes_y estimators_overwrite_params dont_overwrite_parameters "
        "estimators_fit_returns_self readonly_memmap_input "
        "n_features_in_after_fitting positive_only_tag_during_fit dtype_object "
        "f_contiguous_array_estimator supervised_y_2d "
        "methods_sample_order_invariance methods_subset_invariance fit2d_1sample "
        "dict_unchanged fit2d_predict1d"
    ),
    **_each(UNFITTED_PREDICT, "estimators_unfitted"),
    **_each(
        SHORT_WINDOWS,
        "estimators_dtypes pipeline_consistency estimators_nan_inf "
        "estimators_pickle classifier_data_not_an_array "
        "classifiers_classes class_weight_classifiers fit2d_1feature "
        "fit_idempotent fit_check_is_fitted n_features_in"
    ),
    **_each(TORCH_ERRORS, "estimators_empty_data_messages"),
    **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
    **_each(ROW_COUNT, "classifiers_train"),
}
# checks that feed generated numeric arrays where a transformer reads file or reading
# references, and checks of fitting that a lazily fitted transformer cannot fail
_NUMERIC_ARRAY_CHECKS = (
    "fit_score_takes_y estimators_dtypes dtype_object pipeline_consistency estimators_pickle "
    "f_contiguous_array_estimator transformer_data_not_an_array transformer_general "
    "transformer_preserve_dtypes methods_sample_order_invariance methods_subset_invariance "
    "dict_unchanged fit_idempotent fit2d_predict1d"
)
_LAZY_FIT_CHECKS = (
    "complex_data estimators_empty_data_messages estimators_nan_inf estimator_sparse_tag fit1d"
)

EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    **{
        name: _IMAGE_PIPELINE | (_IMAGE_DECISION if decides else {})
        for name, decides in reading_through(ImageLoader).items()
    },
    **dict.fromkeys(reading_through(SignalLoader), _SIGNAL_PIPELINE),
    "autoencoder_lightgbm": _RAW_TABLE_WRAPPER,
    "autoencoder_lr": _RAW_TABLE_WRAPPER,
    "bagged_mlp": {
        **_each(PIPELINE_STEPS, "estimators_overwrite_params dont_overwrite_parameters"),
        **_each(PREDICT_N_FEATURES, "n_features_in_after_fitting"),
        **_each(OBJECT_TAG, "dtype_object"),
        **_each(NAN_TAG, "estimators_nan_inf"),
        **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
        **_each(BAGGING_DECISION, "classifiers_train decision_proba_consistency"),
        **_each(PREDICT_1D, "fit2d_predict1d"),
    },
    "calibrated": _RAW_TABLE_WRAPPER,
    "deep_boosted_lightgbm": {
        **_each(NAN_TAG, "estimators_nan_inf"),
        **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
        **_each(NOT_AN_ARRAY, "classifier_data_not_an_array"),
        **_each(ONE_CLASS_WORDING, "fit2d_1sample"),
    },
    "deep_features_lightgbm": _RAW_TABLE_WRAPPER,
    "deep_features_lr": _RAW_TABLE_WRAPPER,
    "deep_features_svm": {
        **_each(NAN_TAG, "estimators_nan_inf"),
        **_each(SVC_READONLY, "estimators_pickle"),
        **_each(NOT_AN_ARRAY, "classifier_data_not_an_array"),
        **_each(ONE_CLASS_WORDING, "fit2d_1sample"),
    },
    "deep_mlp": _TABULAR_NETWORK,
    "deep_resnet": _TABULAR_NETWORK,
    "early_fusion": _FUSION,
    "grud": _each(FLOAT32_BATCHES, "methods_subset_invariance"),
    "hybrid_ensemble": {
        **_each(PREDICT_N_FEATURES, "n_features_in_after_fitting"),
        **_each(NAN_TAG, "estimators_nan_inf"),
        **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
        **_each(NOT_AN_ARRAY, "classifier_data_not_an_array"),
        **_each(ONE_CLASS_WORDING, "fit2d_1sample"),
        **_each(PREDICT_1D, "fit2d_predict1d"),
    },
    "late_fusion": _FUSION,
    "leaf_embedding_mlp": {
        **_RAW_TABLE_ENSEMBLE, **_each(FLOAT32_BATCHES, "methods_sample_order_invariance"),
    },
    "lightgbm": {
        **_each(LGBM_KWARGS, "no_attributes_set_in_init"),
        **_each(LGBM_ZERO_WEIGHTS, "all_zero_sample_weights_error"),
    },
    "random_forest": {
        **_each(
            FOREST_WEIGHTS,
            "sample_weight_equivalence_on_dense_data "
            "sample_weight_equivalence_on_sparse_data"
        ),
    },
    "soft_voting": _RAW_TABLE_ENSEMBLE,
    "stacking": _RAW_TABLE_ENSEMBLE,
    "stacking_deep_head": {
        **_each(FLOAT32_BATCHES, "methods_sample_order_invariance"),
        **_each(PREDICT_N_FEATURES, "n_features_in_after_fitting"),
        **_each(OBJECT_TAG, "dtype_object"),
        **_each(NAN_TAG, "estimators_nan_inf"),
        **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
        **_each(NOT_AN_ARRAY, "classifier_data_not_an_array"),
        **_each(LIST_INDEX, "classifiers_train"),
        **_each(ONE_CLASS_WORDING, "fit2d_1sample"),
        **_each(PREDICT_1D, "fit2d_predict1d"),
    },
    "svm": {
        **_each(
            SVM_WEIGHTS,
            "sample_weight_equivalence_on_dense_data "
            "sample_weight_equivalence_on_sparse_data"
        ),
        **_each(CALIBRATED_Y_2D, "supervised_y_2d"),
    },
    "text_embedding_logistic": _TEXT_PIPELINE,
    "text_stacked": {
        **_each(
            TEXT,
            "fit_score_takes_y estimators_overwrite_params "
            "dont_overwrite_parameters estimators_fit_returns_self "
            "readonly_memmap_input n_features_in_after_fitting "
            "positive_only_tag_during_fit estimators_dtypes complex_data "
            "dtype_object estimators_empty_data_messages pipeline_consistency "
            "estimators_nan_inf estimator_sparse_tag estimator_sparse_array "
            "estimator_sparse_matrix estimators_pickle f_contiguous_array_estimator "
            "classifier_data_not_an_array classifiers_one_label classifiers_classes "
            "classifiers_train classifiers_regression_target supervised_y_2d "
            "methods_sample_order_invariance methods_subset_invariance "
            "fit2d_1sample fit2d_1feature dict_unchanged fit_idempotent "
            "fit_check_is_fitted n_features_in fit2d_predict1d requires_y_none"
        ),
        **_each(UNFITTED_PREDICT, "estimators_unfitted"),
    },
    "text_tfidf_logistic": _TEXT_PIPELINE,
    "timeline_ensemble": _RAW_TABLE_WRAPPER,
    "timeline_transformer": _each(FLOAT32_BATCHES, "methods_subset_invariance"),
    "text.SentenceEncoder": _TEXT_ENCODER,
    "text.TextJoiner": _TEXT_ENCODER,
    "text_finetune.FineTunedSentenceEncoder": _TEXT_ENCODER,
    "encoder.PretrainedImageEncoder": {
        **_each(
            IMAGE_ARRAYS,
            "fit_score_takes_y estimators_overwrite_params "
            "dont_overwrite_parameters estimators_fit_returns_self "
            "readonly_memmap_input n_features_in_after_fitting "
            "positive_only_tag_during_fit estimators_dtypes complex_data "
            "dtype_object estimators_empty_data_messages "
            "pipeline_consistency estimators_nan_inf estimator_sparse_tag "
            "estimator_sparse_array estimator_sparse_matrix "
            "estimators_pickle f_contiguous_array_estimator "
            "transformer_data_not_an_array transformer_general "
            "transformer_preserve_dtypes methods_sample_order_invariance "
            "methods_subset_invariance fit2d_1sample fit2d_1feature "
            "dict_unchanged fit_idempotent fit_check_is_fitted "
            "n_features_in fit2d_predict1d"
        ),
    },
    "ensemble.AveragedImageModels": {
        **_each(UNFITTED_PREDICT, "estimators_unfitted"),
        **_each(NO_N_FEATURES, "n_features_in_after_fitting n_features_in"),
        **_each(SPARSE_TAG_ACCEPTS, "estimator_sparse_tag"),
    },
    "loader.ImageLoader": {
        **_each(
            IMAGE_FILES,
            _NUMERIC_ARRAY_CHECKS
        ),
        **_each(NO_N_FEATURES, "n_features_in_after_fitting n_features_in"),
        **_each(
            LAZY_FIT,
            _LAZY_FIT_CHECKS
        ),
    },
    "transfer.ImageTransferClassifier": {
        **_each(
            IMAGE_ARRAYS,
            "fit_score_takes_y estimators_overwrite_params "
            "dont_overwrite_parameters estimators_fit_returns_self "
            "readonly_memmap_input n_features_in_after_fitting "
            "positive_only_tag_during_fit estimators_dtypes complex_data "
            "dtype_object estimators_empty_data_messages "
            "pipeline_consistency estimators_nan_inf estimator_sparse_tag "
            "estimator_sparse_array estimator_sparse_matrix "
            "estimators_pickle f_contiguous_array_estimator "
            "classifier_data_not_an_array classifiers_one_label "
            "classifiers_classes classifiers_train "
            "classifiers_regression_target supervised_y_2d "
            "class_weight_classifiers decision_proba_consistency "
            "methods_sample_order_invariance methods_subset_invariance "
            "fit2d_1sample fit2d_1feature dict_unchanged fit_idempotent "
            "fit_check_is_fitted n_features_in fit2d_predict1d "
            "requires_y_none"
        ),
        **_each(UNFITTED_PREDICT, "estimators_unfitted"),
    },
    "calibration.LogOddsScores": {
        **_each(NO_N_FEATURES, "n_features_in_after_fitting n_features_in"),
        **_each(SPARSE_TAG_ACCEPTS, "estimator_sparse_tag"),
    },
    "encoding.TabularEncoder": {
        **_each(PREDICT_N_FEATURES, "n_features_in_after_fitting"),
        **_each(ENCODER_COMPLEX, "complex_data"),
        **_each(OBJECT_TAG, "dtype_object"),
        **_each(ENCODER_EMPTY, "estimators_empty_data_messages"),
        **_each(NAN_TAG, "estimators_nan_inf"),
        **_each(SPARSE, "estimator_sparse_tag estimator_sparse_array estimator_sparse_matrix"),
        **_each(FLOAT32_OUTPUT, "transformer_preserve_dtypes"),
        **_each(PREDICT_1D, "fit2d_predict1d"),
    },
    "fusion.TabularEncoder": {
        **_each(
            DATAFRAME,
            "fit_score_takes_y estimators_overwrite_params "
            "dont_overwrite_parameters estimators_fit_returns_self "
            "readonly_memmap_input n_features_in_after_fitting "
            "positive_only_tag_during_fit estimators_dtypes complex_data "
            "dtype_object estimators_empty_data_messages pipeline_consistency "
            "estimators_nan_inf estimator_sparse_tag estimator_sparse_array "
            "estimator_sparse_matrix estimators_pickle "
            "f_contiguous_array_estimator transformer_data_not_an_array "
            "transformer_general transformer_preserve_dtypes "
            "methods_sample_order_invariance methods_subset_invariance "
            "fit2d_1sample fit2d_1feature dict_unchanged fit_idempotent "
            "fit_check_is_fitted n_features_in fit2d_predict1d"
        ),
    },
    "features.HRVFeatures": {
        **_each(
            SHORT_HRV,
            "fit_score_takes_y estimators_dtypes dtype_object "
            "pipeline_consistency estimators_pickle "
            "f_contiguous_array_estimator transformer_data_not_an_array "
            "transformer_general transformer_preserve_dtypes "
            "methods_sample_order_invariance methods_subset_invariance "
            "dict_unchanged fit_idempotent"
        ),
        **_each(NO_N_FEATURES, "n_features_in_after_fitting n_features_in"),
        **_each(
            LAZY_FIT,
            _LAZY_FIT_CHECKS
        ),
        **_each(PREDICT_1D, "fit2d_predict1d"),
    },
    "features.SignalHRVFeatures": _SIGNAL_READER,
    "loader.SignalLoader": _SIGNAL_READER,
    "nets.CNN1DClassifier": _WINDOW_NETWORK,
    "nets.CNNGRUClassifier": _WINDOW_NETWORK,
    "resting.RestingHeartRate": {
        **_each(
            READINGS,
            _NUMERIC_ARRAY_CHECKS
        ),
        **_each(NO_N_FEATURES, "n_features_in_after_fitting n_features_in"),
        **_each(
            LAZY_FIT,
            _LAZY_FIT_CHECKS
        ),
        **_each(NOT_FITTED, "fit_check_is_fitted"),
    },
}


def expected_failures(estimator: BaseEstimator) -> dict[str, str]:
    """The checks ``estimator`` is known to fail, with the reason."""
    return EXPECTED_FAILURES.get(_NAMES[id(estimator)], {})


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Tiny fits are fastest on one BLAS/OpenMP thread (and do not spin on a shared CPU)."""
    with threadpool_limits(1):
        yield


def contract_cases() -> list[Any]:
    """scikit-learn's checks for every estimator, named ``<estimator>-<check>``.

    The ids are built from the estimators' medpredict names: scikit-learn's own ids embed
    reprs with memory addresses, which differ between pytest-xdist workers.
    """
    cases = []
    for name, estimator in ESTIMATORS.items():
        for case in estimator_checks_generator(
            estimator, legacy=True, expected_failed_checks=expected_failures(estimator),
            mark="xfail",
        ):
            values, marks = (case.values, case.marks) if hasattr(case, "values") else (case, ())
            check = values[1]
            check_name = getattr(check, "func", check).__name__
            cases.append(pytest.param(*values, marks=marks, id=f"{name}-{check_name}"))
    return cases


@pytest.mark.parametrize(("estimator", "check"), contract_cases())
def test_sklearn_contract(
    estimator: BaseEstimator, check: Callable, request: pytest.FixtureRequest
) -> None:
    """scikit-learn's estimator checks (synthetic data by design of those checks)."""
    expected = request.node.get_closest_marker("xfail")
    if expected is None:
        check(estimator)
        return
    try:
        check(estimator)
    except SkipTest:
        raise
    except Exception:
        failed = True
    else:
        failed = False
    if failed:
        # outside the except block: pytest then renders no deep traceback (minutes for ~900)
        pytest.xfail(expected.kwargs["reason"])


def test_every_estimator_is_checked_or_excused():
    """A new estimator class is picked up, or must say why it is not checked."""
    checked = {type(estimator) for estimator in ESTIMATORS.values()}
    classes = medpredict_estimator_classes()
    unaccounted = [n for n, cls in classes.items() if cls not in checked and n not in NOT_CHECKED]
    assert not unaccounted
    assert set(NOT_CHECKED) <= set(classes), "NOT_CHECKED names a class that no longer exists"
    assert set(EXPECTED_FAILURES) <= set(ESTIMATORS), "EXPECTED_FAILURES names an unknown one"


def test_every_registered_model_is_a_checked_classifier():
    classifiers = [name for name in available_models() if not is_survival_model(name)]
    assert set(classifiers) <= set(ESTIMATORS)
    assert all(is_classifier(ESTIMATORS[name]) for name in classifiers)


def test_l1_gene_selection_handles_three_classes():
    """Wine cultivars (3 classes, 13 measurements): L1 selection scores one-vs-rest."""
    X, y = load_wine(return_X_y=True)
    selector = GeneSelector(method="l1", k=5, C=0.5).fit(X, y)
    assert selector.get_support().sum() == 5
    assert np.all(selector.scores_[selector.get_support()] > 0)
    with pytest.raises(ValueError, match="at least two classes"):
        GeneSelector(method="l1").fit(X, np.zeros(len(y)))


def test_gene_selector_refuses_missing_values_only_in_the_genes_it_keeps():
    """Golub leukaemia training set: a missing value matters only in a selected gene."""
    golub = load_golub("train")
    X = np.log10(golub.X.clip(100, 16000))
    selector = GeneSelector(k=10).fit(X, golub.y)
    kept, dropped = selector.selected_genes()[0], X.columns[~selector.get_support()][0]
    with_gap = X.copy()
    with_gap.loc[with_gap.index[0], dropped] = np.nan
    assert selector.transform(with_gap).shape == (len(X), 10)
    with_gap.loc[with_gap.index[0], kept] = np.nan
    with pytest.raises(DataError, match=re.escape(f"NaN or infinity (first in column '{kept}')")):
        selector.transform(with_gap)
