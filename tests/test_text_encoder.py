"""Clinical text on the real Medical Abstracts corpus (small subsets keep this fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from medpredict.data.errors import DataError
from medpredict.encoders import embedding_cache
from medpredict.encoders import text as text_module
from medpredict.encoders.text import (
    SentenceEncoder,
    load_medical_abstracts,
    tfidf_pipeline,
)
from medpredict.encoders.text_explain import explain_text
from medpredict.encoders.text_finetune import FineTunedSentenceEncoder
from medpredict.evaluation.metrics import multiclass_metrics

SHORT = 64  # tokens: keeps CPU embedding of test subsets to a few seconds


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return load_medical_abstracts()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDPREDICT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_corpus_loader(corpus):
    assert corpus.shape == (2888, 3)
    assert corpus["label"].value_counts().sort_index().tolist() == [633, 299, 385, 610, 961]
    assert corpus["condition"].nunique() == 5


def test_embeddings_are_normalised_and_named(corpus, private_cache):
    texts = corpus["text"].iloc[:12]
    enc = SentenceEncoder(max_seq_length=SHORT, show_progress=False).set_output(transform="pandas")
    out = enc.fit_transform(texts.to_frame("abstract"))
    assert out.shape == (12, 384)
    assert out.columns[0] == "abstract__emb000"
    np.testing.assert_allclose(np.linalg.norm(out.to_numpy(), axis=1), 1.0, atol=1e-5)
    assert clone(enc).get_params() == enc.get_params()


def test_cache_serves_repeat_texts_without_the_model(corpus, private_cache, monkeypatch):
    texts = corpus["text"].iloc[20:30].tolist()
    first = SentenceEncoder(max_seq_length=SHORT, show_progress=False).fit_transform(texts)
    shards = list((private_cache / "embeddings").rglob("*.safetensors"))
    assert len(shards) == 1
    stored = load_file(shards[0])
    assert stored["keys"].shape == (10, 32) and stored["embeddings"].shape == (10, 384)

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran although every text was cached")

    monkeypatch.setattr(SentenceEncoder, "_compute", no_model)
    monkeypatch.setattr(embedding_cache, "_OPEN", {})  # read the shards back from disk
    again = SentenceEncoder(max_seq_length=SHORT, show_progress=False).fit_transform(texts[::-1])
    np.testing.assert_array_equal(again, first[::-1])
    with pytest.raises(AssertionError, match="the model ran"):
        SentenceEncoder(max_seq_length=SHORT + 1, show_progress=False).fit_transform(texts)


def test_missing_and_non_text_values_are_named(corpus, private_cache):
    frame = pd.DataFrame({"note": [corpus["text"].iloc[0], None, "  "]})
    with pytest.raises(DataError, match=r"'note' is empty in rows 2, 3"):
        SentenceEncoder(max_seq_length=SHORT, show_progress=False).fit(frame)
    enc = SentenceEncoder(max_seq_length=SHORT, missing="zero", show_progress=False)
    out = enc.fit_transform(frame)
    assert out.shape == (3, 385)
    assert out[:, -1].tolist() == [0.0, 1.0, 1.0]
    assert not out[1:, :-1].any()
    with pytest.raises(DataError, match=r"'note' should hold text but row 2"):
        enc.transform(pd.DataFrame({"note": ["ok", 3.5]}))


def test_embedding_head_learns_the_five_classes(corpus, private_cache):
    """MiniLM + logistic regression on 100 abstracts (3-fold CV) is far above chance (0.2)."""
    sample = corpus.groupby("label").head(20)
    model = make_pipeline(SentenceEncoder(max_seq_length=SHORT, show_progress=False),
                          LogisticRegression(C=10, max_iter=2000))
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    proba = cross_val_predict(model, sample[["text"]], sample["label"], cv=folds,
                              method="predict_proba")
    assert multiclass_metrics(sample["label"].to_numpy() - 1, proba)["macro_f1"] > 0.4


def test_explanations_point_at_the_influential_sentence(corpus):
    sample = corpus.groupby("label").head(60)
    model = tfidf_pipeline().fit(sample[["text"]], sample["condition"])
    text = corpus.loc[corpus["label"] == 1, "text"].iloc[100]
    table = explain_text(model, text, target="neoplasms", top=None)
    assert len(table) >= 3 and table["influence"].is_monotonic_decreasing
    spans = table[["unit", "start", "end"]].itertuples(index=False)
    assert all(text[start:end] == unit for unit, start, end in spans)
    k = list(model.classes_).index("neoplasms")
    full = model.predict_proba(pd.DataFrame({"text": [text]}))[0, k]
    top = table.iloc[0]
    shortened = (text[: top.start] + text[top.end :]).strip()
    without = model.predict_proba(pd.DataFrame({"text": [shortened]}))[0, k]
    assert without == pytest.approx(full - top.influence)
    words = explain_text(model, text, unit="word", top=5)
    assert len(words) == 5 and words["influence"].iloc[0] > 0


def test_fine_tuning_changes_the_encoder_and_is_reused(corpus, private_cache, monkeypatch):
    sample = corpus.groupby("label").head(2)
    enc = FineTunedSentenceEncoder(max_seq_length=32, batch_size=10, learning_rate=1e-4,
                                   show_progress=False)
    tuned = enc.fit_transform(sample[["text"]], sample["label"])
    base = SentenceEncoder(max_seq_length=32, show_progress=False).fit_transform(sample[["text"]])
    assert tuned.shape == base.shape == (10, 384)
    assert not np.allclose(tuned, base, atol=1e-3)
    monkeypatch.setattr(FineTunedSentenceEncoder, "_train", lambda *a: pytest.fail("retrained"))
    again = clone(enc).fit(sample[["text"]], sample["label"])
    assert again.model_path_ == enc.model_path_
    np.testing.assert_array_equal(again.transform(sample[["text"]]), tuned)


def test_bundled_model_is_found_offline():
    path = text_module.default_model_path()
    assert (path / "model.safetensors").exists()
    assert text_module.resolve_model(None) == str(path)


def test_onnx_backend_matches_torch(corpus, private_cache):
    """ONNX Runtime gives the same vectors as sentence-transformers; int8 stays close."""
    pytest.importorskip("onnxruntime")
    texts = corpus["text"].iloc[40:48].tolist()
    reference = SentenceEncoder(max_seq_length=SHORT, show_progress=False).fit_transform(texts)
    onnx = SentenceEncoder(max_seq_length=SHORT, backend="onnx", show_progress=False)
    np.testing.assert_allclose(onnx.fit_transform(texts), reference, atol=1e-4)
    int8 = SentenceEncoder(max_seq_length=SHORT, backend="onnx-int8", show_progress=False)
    assert (int8.fit_transform(texts) * reference).sum(axis=1).min() > 0.97
    assert len({p.parent.name for p in (private_cache / "embeddings").rglob("*.safetensors")}) == 3
