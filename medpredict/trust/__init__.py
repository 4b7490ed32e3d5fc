"""The trust layer: explanations, fairness, uncertainty, overfitting and the model card.

``assess`` runs it after a study (:mod:`medpredict.trust.assess`); ``runtime`` is the
stored half that prediction and serving use (conformal sets, explanation background);
``fairness``, ``conformal``, ``overfitting``, ``explanations`` and ``model_card`` each
hold one concern with its report section. Import the submodule you need: importing
this package imports none of them.
"""
