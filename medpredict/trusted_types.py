"""The exact types a model file may name: nothing else is constructed on load.

skops already trusts plain containers, scalars, NumPy arrays and NumPy/SciPy ufuncs.
Every other type a ``.skops`` file names must be listed here by its full dotted name.
Only classes whose construction from stored attributes runs no code of the file's
choosing belong here: estimators, their fitted helpers, data holders and a few pure
functions medpredict pipelines hold. Module prefixes are never used, because a module
such as ``builtins`` or ``numpy`` also holds ``exec``, ``eval`` or ``numpy.load``.

:func:`medpredict.artifact.save_model` refuses to write a model that names a type
missing from this list, so every model medpredict saves can be loaded again.
"""

from __future__ import annotations

_SCIKIT_LEARN = (
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.calibration._TemperatureScaling",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.decomposition._pca.PCA",
    "sklearn.decomposition._truncated_svd.TruncatedSVD",
    "sklearn.ensemble._bagging.BaggingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.kernel_approximation.Nystroem",
    "sklearn.kernel_ridge.KernelRidge",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._logistic.LogisticRegressionCV",
    "sklearn.linear_model._ridge.RidgeCV",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.preprocessing._polynomial.PolynomialFeatures",
    "sklearn.svm._classes.SVC",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
)

_OTHER_LIBRARIES = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "numpy.dtype",
    "scipy.interpolate._interpolate.interp1d",
    "sksurv.ensemble.forest.RandomSurvivalForest",
    "sksurv.functions.StepFunction",
    "sksurv.linear_model.coxnet.CoxnetSurvivalAnalysis",
    "sksurv.linear_model.coxph.BreslowEstimator",
    "sksurv.linear_model.coxph.CoxPHSurvivalAnalysis",
    "sksurv.tree.tree.SurvivalTree",
)

_MEDPREDICT = (
    "medpredict.data.schema.Feature",
    "medpredict.data.schema.Schema",
    "medpredict.effects.learners.DRLearner",
    "medpredict.effects.learners.KernelRidgeCV",
    "medpredict.effects.learners.SelectedModel",
    "medpredict.effects.learners.SLearner",
    "medpredict.effects.learners.TLearner",
    "medpredict.effects.learners.XLearner",
    "medpredict.effects.model.EffectModel",
    "medpredict.encoders.genes.ExpressionTransform",
    "medpredict.encoders.genes.GeneSelector",
    "medpredict.encoders.text.SentenceEncoder",
    "medpredict.encoders.text.TextJoiner",
    "medpredict.encoders.text_finetune.FineTunedSentenceEncoder",
    "medpredict.trust.conformal.ConformalSets",
    "medpredict.imaging.encoder.PretrainedImageEncoder",
    "medpredict.imaging.ensemble.AveragedImageModels",
    "medpredict.imaging.loader.ImageLoader",
    "medpredict.imaging.recipes.flatten_pixels",
    "medpredict.imaging.training.FitLog",
    "medpredict.imaging.transfer.ImageTransferClassifier",
    "medpredict.models.calibration.CalibratedModel",
    "medpredict.models.calibration.LogOddsScores",
    "medpredict.models.deep.autoencoder.TabularAutoencoder",
    "medpredict.models.deep.encoding.TabularEncoder",
    "medpredict.models.deep.estimators.TabularMLPClassifier",
    "medpredict.models.deep.estimators.TabularResNetClassifier",
    "medpredict.models.ensembles.SoftVotingEnsemble",
    "medpredict.models.ensembles.StackingEnsemble",
    "medpredict.models.feature_hybrids.DeepFeatureClassifier",
    "medpredict.models.feature_hybrids.LeafEmbeddingClassifier",
    "medpredict.models.feature_hybrids.ResidualBoostingClassifier",
    "medpredict.models.fusion.EarlyFusionClassifier",
    "medpredict.models.fusion.LateFusionClassifier",
    "medpredict.models.fusion.TabularEncoder",
    "medpredict.signals.features.HRVFeatures",
    "medpredict.signals.features.SignalHRVFeatures",
    "medpredict.signals.loader.SignalLoader",
    "medpredict.signals.nets.CNN1DClassifier",
    "medpredict.signals.nets.CNNGRUClassifier",
    "medpredict.survival.deep.DeepSurv",
    "medpredict.survival.deep.LogisticHazard",
    "medpredict.survival.models.GradientBoostedCox",
    "medpredict.survival.models.PenalizedCox",
    "medpredict.survival.models.SurvivalEnsemble",
    "medpredict.timeline.sequence.GRUDClassifier",
    "medpredict.timeline.sequence.SequenceEmbeddingBooster",
    "medpredict.timeline.sequence.TimeAwareTransformerClassifier",
)

TRUSTED_TYPES: frozenset[str] = frozenset((*_SCIKIT_LEARN, *_OTHER_LIBRARIES, *_MEDPREDICT))

MOVED_TYPES: dict[str, str] = {
    "medpredict.evaluation.conformal.ConformalSets": "medpredict.trust.conformal.ConformalSets",
}
"""Types saved under a module path they have since left: old dotted name -> current one.

Loading reads an old name as its current one, so directories saved before a move keep
loading; the current name must be trusted.
"""
