"""Text and gene-expression benchmarks on real data.

1. Medical Abstracts (2,888 abstracts, 5 classes), 5-fold stratified CV: TF-IDF +
   logistic regression baselines against all-MiniLM-L6-v2 embeddings with classical
   heads (fixed settings, or C chosen by inner CV on each training fold) and a stack of
   the embedding and TF-IDF models. Macro-F1 / accuracy with bootstrap 95% CIs and the
   paired macro-F1 difference to the strongest TF-IDF baseline. The sentence encoder is
   frozen and embeds each text on its own, so embedding the corpus once before the
   folds leaks nothing.
2. Embedding time: the corpus embedded from a cold cache in a fresh process, per
   backend (the ONNX int8 backends on the whole corpus; the default torch backend on a
   stratified 10% sample, scaled, unless ``--cold``), and a cached re-run in a fresh
   process.
3. Golub leukaemia: trained on the 38-patient training set only, scored on the
   34-patient independent set (AUROC with CI, errors at risk 0.5), against L2 logistic
   regression on all 7,129 probes; gene selection stability over 10 x 5-fold CV of
   the training set.
4. scikit-survival breast cancer (distant metastasis within 5 years): clinical model
   vs gene panel vs early fusion of both, 5-fold CV, with gene stability.

Run: ``MEDPREDICT_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/text_genomics.py``
Results: benchmarks/results/text_genomics.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from medpredict.data.errors import DataWarning
from medpredict.encoders.genes import (
    gene_pipeline,
    genes_encoder,
    load_breast_cancer_expression,
    load_golub,
    selection_stability,
)
from medpredict.encoders.text import SentenceEncoder, load_medical_abstracts, tfidf_pipeline
from medpredict.evaluation.bootstrap import bootstrap
from medpredict.evaluation.metrics import binary_metrics, multiclass_metrics
from medpredict.models.fusion import EarlyFusionClassifier, LateFusionClassifier, TabularEncoder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "text_genomics.md"
N_BOOT = 1000
SEED = 0
EMBED_LIMIT_S, CACHED_LIMIT_S, F1_TARGET = 120.0, 5.0, 0.60
CLINICAL = ["age", "er", "grade", "size"]


# --- embedding timings (child processes) -------------------------------------------------

def embed_child(backend: str, length: int | None, fraction: float) -> None:
    """Child process: embed the corpus (or a stratified sample) and print timings as JSON."""
    corpus = load_medical_abstracts()
    if fraction < 1:
        corpus = corpus.groupby("label").sample(frac=fraction, random_state=SEED)
    start = time.perf_counter()
    SentenceEncoder(backend=backend, max_seq_length=length, show_progress=False).fit_transform(
        corpus[["text"]]
    )
    print(json.dumps({"texts": len(corpus), "seconds": time.perf_counter() - start}))


def timed_child(backend: str, length: int | None, fraction: float, cache: str) -> dict:
    started = time.perf_counter()
    args = [sys.executable, __file__, "--embed-child", backend, str(length or 0), str(fraction)]
    env = {**os.environ, "MEDPREDICT_CACHE_DIR": cache}
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def embedding_timings(cold_all: bool) -> list[dict]:
    configs = [("torch", None), ("onnx-int8", None), ("onnx-int8", 128)]
    rows = []
    for backend, length in configs:
        fraction = 1.0 if cold_all or backend != "torch" else 0.1
        with tempfile.TemporaryDirectory() as cache:
            cold = timed_child(backend, length, fraction, cache)
            cached = timed_child(backend, length, fraction, cache)
        scale = 2888 / cold["texts"]
        rows.append({"backend": backend, "tokens": length or 256, "texts": cold["texts"],
                     "cold": cold["seconds"], "cold_2888": cold["seconds"] * scale,
                     "cold_process": cold["process_seconds"], "cached": cached["seconds"],
                     "cached_process": cached["process_seconds"]})
    return rows


def cached_full_run() -> dict:
    """The whole corpus from the user's cache (filled by an earlier run), in a new process."""
    result = timed_child("torch", None, 1.0, str(Path(os.environ.get(
        "MEDPREDICT_CACHE_DIR", Path.home() / ".cache" / "medpredict"))))
    return result


# --- Medical Abstracts heads ---------------------------------------------------------------

def tuned(estimator, grid: dict) -> GridSearchCV:
    inner = StratifiedKFold(3, shuffle=True, random_state=SEED)
    return GridSearchCV(estimator, grid, scoring="f1_macro", cv=inner, n_jobs=1)


def text_candidates(emb_cols: list[str]) -> dict:
    emb_lr = LogisticRegression(C=1.0, max_iter=5000)
    emb_lr_tuned = tuned(LogisticRegression(max_iter=5000), {"C": [0.3, 1.0, 3.0]})
    emb_svm = SVC(C=1.0, probability=True, random_state=SEED)
    stacked = LateFusionClassifier(
        [("embedding", emb_lr, emb_cols), ("tfidf", tfidf_pipeline(C=10.0), ["text"])],
        meta=LogisticRegression(max_iter=5000), cv=5, seed=SEED,
    )
    emb = ColumnTransformer([("embedding", "passthrough", emb_cols)])
    text = ColumnTransformer([("tfidf", TfidfVectorizer(), "text")])
    return {
        "TF-IDF unigrams + LR (scikit-learn defaults)": (
            make_pipeline(text, LogisticRegression(max_iter=5000)), "baseline"),
        "TF-IDF 1-2 grams, sublinear tf + LR (C=10)": (
            make_pipeline(ColumnTransformer([("text", "passthrough", ["text"])]),
                          tfidf_pipeline(C=10.0)), "baseline"),
        "MiniLM + LR (C=1)": (make_pipeline(emb, emb_lr), "encoder"),
        "MiniLM + LR, C by inner CV": (make_pipeline(emb, emb_lr_tuned), "encoder"),
        "MiniLM + RBF SVM (C=1)": (make_pipeline(emb, emb_svm), "encoder"),
        "Stack: MiniLM LR + TF-IDF LR (late fusion, `text_stacked`)": (stacked, "encoder"),
    }


def text_benchmark(frame: pd.DataFrame, y: np.ndarray, emb_cols: list[str]) -> list[dict]:
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(frame, y))
    rows, oof = [], {}
    for name, (model, role) in text_candidates(emb_cols).items():
        start = time.perf_counter()
        proba = np.zeros((len(y), 5))
        for train, test in folds:
            fitted = clone(model).fit(frame.iloc[train], y[train])
            proba[test] = fitted.predict_proba(frame.iloc[test])
        oof[name] = proba
        metrics = bootstrap(multiclass_metrics, y, proba, n_boot=N_BOOT, seed=SEED)
        rows.append({"model": name, "role": role, "seconds": time.perf_counter() - start,
                     **{k: metrics[k] for k in ("macro_f1", "accuracy", "auroc")}})
        print(f"{name}: macro-F1 {metrics['macro_f1']}", flush=True)
    baselines = [r for r in rows if r["role"] == "baseline"]
    best_base = max(baselines, key=lambda r: r["macro_f1"].value)["model"]

    def delta(y_, a, b):
        f1 = multiclass_metrics(y_, a)["macro_f1"] - multiclass_metrics(y_, b)["macro_f1"]
        return {"delta": f1}

    for row in rows:
        row["delta"] = bootstrap(delta, y, oof[row["model"]], oof[best_base],
                                 n_boot=N_BOOT, seed=SEED)["delta"]
        row["vs"] = best_base
    return rows


# --- gene expression -------------------------------------------------------------------------

def golub_benchmark() -> dict:
    train, independent = load_golub("train"), load_golub("independent")
    y_ind = independent.y.to_numpy()
    out = {}
    models = {
        "univariate top-50 + L2 LR": gene_pipeline(method="univariate", k=50, seed=SEED),
        "L1 selection (C=0.1) + L2 LR": gene_pipeline(method="l1", k=50, seed=SEED),
        "L2 LR on all 7,129 probes (baseline)": make_pipeline(
            gene_pipeline().named_steps["expression"], StandardScaler(),
            LogisticRegression(max_iter=5000)),
    }
    for name, model in models.items():
        fitted = clone(model).fit(train.X, train.y)
        risk = fitted.predict_proba(independent.X)[:, 1]
        metrics = bootstrap(lambda a, b: {"auroc": binary_metrics(a, b)["auroc"]}, y_ind, risk,
                            n_boot=2000, seed=SEED)
        wrong, confident = (risk >= 0.5) != y_ind, np.abs(risk - 0.5) > 0.3
        out[name] = {"auroc": metrics["auroc"], "errors": int(wrong.sum()),
                     "confident_errors": int((wrong & confident).sum()),
                     "confident": int(confident.sum())}
    folds = list(RepeatedStratifiedKFold(n_splits=5, n_repeats=10, random_state=SEED)
                 .split(train.X, train.y))
    stability = selection_stability(gene_pipeline(k=50, seed=SEED), train.X, train.y, folds)
    table = stability.table.head(15).copy()
    table["description"] = table["gene"].map(train.gene_names).str.slice(0, 45)
    return {"models": out, "stability": table, "jaccard": stability.jaccard,
            "n_fits": len(folds)}


def breast_benchmark() -> dict:
    data = load_breast_cancer_expression()
    X, y = data.X, data.y.to_numpy()
    genes = [c for c in X.columns if c not in CLINICAL]
    clinical = make_pipeline(
        ColumnTransformer([("clinical", SimpleImputer(strategy="median"), CLINICAL)]),
        StandardScaler(), LogisticRegression(max_iter=5000))
    panel = make_pipeline(ColumnTransformer([("genes", "passthrough", genes)]),
                          gene_pipeline(k=20, log_transform=False, C=0.1))
    fusion = EarlyFusionClassifier(
        [("clinical", TabularEncoder(), CLINICAL), ("genes", genes_encoder(genes, SEED), genes)],
        head=Pipeline([("scale", StandardScaler()),
                       ("model", LogisticRegression(C=0.1, max_iter=5000))]))
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(X, y))
    results = {}
    for name, model in {"clinical (age, ER, grade, size) LR": clinical,
                        "gene panel: top-20 F-test + L2 LR (C=0.1)": panel,
                        "early fusion: clinical + top-50 genes": fusion}.items():
        risk = np.zeros(len(y))
        for train, test in folds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                risk[test] = clone(model).fit(X.iloc[train], y[train]).predict_proba(
                    X.iloc[test])[:, 1]
        results[name] = bootstrap(lambda a, b: {"auroc": binary_metrics(a, b)["auroc"]}, y, risk,
                                  n_boot=N_BOOT, seed=SEED)["auroc"]
    repeated = list(RepeatedStratifiedKFold(n_splits=5, n_repeats=10, random_state=SEED)
                    .split(X, y))
    stability = selection_stability(gene_pipeline(k=20, log_transform=False, C=0.1),
                                    X[genes], y, repeated)
    return {"models": results, "stability": stability.table.head(10), "jaccard": stability.jaccard,
            "data": data}


# --- report ------------------------------------------------------------------------------------

def write(results: dict) -> None:
    load = results["load"]
    lines = [
        "# Text and gene-expression benchmarks",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}. Other work was sharing the CPU: 1-minute load "
        f"average {load[0]:.1f} at the start and {load[2]:.1f} at the end of this run "
        "(2.0 = both cores busy), so wall times are pessimistic.",
        "Command: `MEDPREDICT_DATA_DIR=/work/shared/data .venv/bin/python "
        f"benchmarks/text_genomics.py{' --cold' if results['cold_all'] else ''}`",
        "",
        "## Medical Abstracts (2,888 abstracts, 5 classes, 5-fold stratified CV)",
        "",
        f"Target: an encoder + classical head beats the TF-IDF baseline and reaches macro-F1 "
        f">= {F1_TARGET:.2f}. Reference values measured earlier on this corpus: TF-IDF + LR "
        "macro-F1 0.532, MiniLM + LR 0.577. Delta: paired bootstrap difference in macro-F1 "
        "to the strongest TF-IDF baseline.",
        "",
        "| model | kind | macro-F1 (95% CI) | accuracy | macro AUROC | delta macro-F1 | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["text"]:
        lines.append(f"| {r['model']} | {r['role']} | {r['macro_f1']} | {r['accuracy']} | "
                     f"{r['auroc']} | {r['delta']} | {r['seconds']:.0f} |")
    tl = results["timing_load"]
    lines += ["", "### Embedding time (all-MiniLM-L6-v2, 2,888 abstracts, fresh process)", "",
              f"Targets: cold <= {EMBED_LIMIT_S:.0f} s, cached re-run <= {CACHED_LIMIT_S:.0f} s. "
              f"Timings {results['timing_note']}, with a 1-minute load average of {tl[0]:.1f} "
              f"before and {tl[1]:.1f} after (2 cores shared with other work). Cold includes "
              "loading the model (and, for ONNX, exporting and quantising it once).",
              "",
              "| backend | tokens | texts timed | cold (s) | cold, scaled to 2,888 (s) | "
              "vs target | cached re-run (s) | cached process incl. imports (s) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results["timings"]:
        lines.append(f"| {r['backend']} | {r['tokens']} | {r['texts']} | {r['cold']:.1f} | "
                     f"{r['cold_2888']:.0f} | {r['cold_2888'] / EMBED_LIMIT_S:.2f}x | "
                     f"{r['cached']:.2f} | {r['cached_process']:.1f} |")
    full = results["cached_full"]
    lines += ["", f"Cached re-run of the full corpus (default backend, user cache, new process): "
              f"{full['seconds']:.2f} s for {full['texts']} abstracts "
              f"({full['seconds'] / CACHED_LIMIT_S:.2f}x the {CACHED_LIMIT_S:.0f} s target; "
              f"{full['process_seconds']:.1f} s including Python start-up and imports)."]
    golub = results["golub"]
    lines += ["", "## Golub leukaemia (train 38 -> independent 34, AML vs ALL)", "",
              "| model | independent AUROC (95% CI) | errors at risk 0.5 | "
              "confident calls (risk < 0.2 or > 0.8) | errors among them |",
              "|---|---|---|---|---|"]
    for name, r in golub["models"].items():
        lines.append(f"| {name} | {r['auroc']} | {r['errors']} / 34 | {r['confident']} | "
                     f"{r['confident_errors']} |")
    lines += ["", f"Gene selection stability (univariate top-50, {golub['n_fits']} fits on "
              f"10 x 5-fold CV of the training set only; mean pairwise Jaccard "
              f"{golub['jaccard']:.2f}). Positive coefficient: higher in AML.", "",
              "| gene | description | selection frequency | mean coefficient |",
              "|---|---|---|---|"]
    for r in golub["stability"].itertuples():
        lines.append(f"| {r.gene} | {r.description} | {r.frequency:.2f} | "
                     f"{r.mean_coefficient:+.3f} |")
    breast = results["breast"]
    data = breast["data"]
    lines += ["", "## Breast cancer expression (scikit-survival bundled data)", "",
              f"Endpoint: {data.description}. {len(data.y)} patients ({int(data.y.sum())} events); "
              f"{data.excluded['censored before horizon']} patients censored before 5 years "
              "without metastasis have an unknown outcome and are excluded. 5-fold stratified CV.",
              "", "| model | AUROC (95% CI) |", "|---|---|"]
    for name, est in breast["models"].items():
        lines.append(f"| {name} | {est} |")
    lines += ["", f"Gene panel stability (top-20, 10 x 5-fold CV; mean pairwise Jaccard "
              f"{breast['jaccard']:.2f}):", "", "| gene | selection frequency | mean coefficient |",
              "|---|---|---|"]
    for r in breast["stability"].itertuples():
        lines.append(f"| {r.gene} | {r.frequency:.2f} | {r.mean_coefficient:+.3f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


def backend_check(backend: str) -> None:
    """Cold embedding of the corpus with ``backend`` (empty cache) and the encoder heads'
    5-fold macro-F1 on those embeddings: is the fast backend as good as the default?"""
    corpus = load_medical_abstracts()
    y = corpus["label"].to_numpy() - 1
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MEDPREDICT_CACHE_DIR"] = cache
        start = time.perf_counter()
        encoder = SentenceEncoder(backend=backend, show_progress=False)
        embeddings = encoder.set_output(transform="pandas").fit_transform(corpus[["text"]])
        seconds = time.perf_counter() - start
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(embeddings, y))
    print(f"| backend | cold embedding of {len(y)} abstracts (s) | head | macro-F1 (95% CI) |")
    print("|---|---|---|---|")
    heads = {"LR (C=1)": LogisticRegression(C=1.0, max_iter=5000),
             "RBF SVM (C=1)": SVC(C=1.0, probability=True, random_state=SEED)}
    for name, head in heads.items():
        proba = np.zeros((len(y), 5))
        for train, test in folds:
            proba[test] = clone(head).fit(embeddings.iloc[train], y[train]).predict_proba(
                embeddings.iloc[test])
        f1 = bootstrap(multiclass_metrics, y, proba, n_boot=N_BOOT, seed=SEED)["macro_f1"]
        print(f"| {backend} | {seconds:.1f} | {name} | {f1} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true",
                        help="time the torch backend on the whole corpus too")
    parser.add_argument("--timings-json", type=Path,
                        help="reuse embedding timings saved by an earlier run (skips them)")
    parser.add_argument("--timings-only", type=Path,
                        help="only measure the embedding timings and save them to this JSON file")
    parser.add_argument("--backend-check", metavar="BACKEND",
                        help="time a cold embedding with BACKEND and score the encoder heads")
    parser.add_argument("--embed-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend_check:
        backend_check(args.backend_check)
        return
    if args.timings_only:
        before = os.getloadavg()[0]
        timings = embedding_timings(args.cold)
        args.timings_only.write_text(json.dumps({
            "timings": timings, "load": [before, os.getloadavg()[0]],
            "measured": time.strftime("%Y-%m-%d %H:%M")}, indent=1))
        print(json.dumps(timings, indent=1))
        return
    if args.embed_child:
        backend, length, fraction = args.embed_child
        embed_child(backend, int(length) or None, float(fraction))
        return
    results = {"cold_all": args.cold, "load": [os.getloadavg()[0]]}
    if args.timings_json:
        saved = json.loads(args.timings_json.read_text())
        results["timings"], results["timing_load"] = saved["timings"], saved["load"]
        results["timing_note"] = f"measured {saved['measured']} by an earlier run of this script"
    else:
        results["timings"] = embedding_timings(args.cold)
        results["timing_load"] = [results["load"][0], os.getloadavg()[0]]
        results["timing_note"] = "measured in this run"
    results["load"].append(os.getloadavg()[0])
    print("timings", results["timings"], flush=True)
    corpus = load_medical_abstracts()
    embeddings = SentenceEncoder().set_output(transform="pandas").fit_transform(corpus[["text"]])
    results["cached_full"] = cached_full_run()
    print("cached re-run", results["cached_full"], flush=True)
    frame = pd.concat([corpus[["text"]], embeddings], axis=1)
    results["text"] = text_benchmark(frame, corpus["label"].to_numpy() - 1,
                                     list(embeddings.columns))
    results["golub"] = golub_benchmark()
    print("golub", results["golub"]["models"], flush=True)
    results["breast"] = breast_benchmark()
    print("breast", results["breast"]["models"], flush=True)
    results["load"].append(os.getloadavg()[0])
    write(results)


if __name__ == "__main__":
    main()
