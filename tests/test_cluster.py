"""Studies on a real Dask cluster give the same results as in this process.

Unit tests use an in-process ``LocalCluster`` reached by its TCP address; one test
starts ``dask scheduler`` and two ``dask worker`` processes, runs a study through
them by address and stops them. Data: Ripley's Pima training set (real).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from medpredict.cluster import active_client, check_address, fan_out, on_cluster
from medpredict.data.datasets import load_dataset
from medpredict.evaluation.splits import internal_folds
from medpredict.spec import parse_spec
from medpredict.study import run_study
from medpredict.study.results import FoldError
from medpredict.study.validation import cross_validate_each

distributed = pytest.importorskip("distributed")

# Random forests sum their trees' probabilities in whatever order threads finish,
# so two runs in the same process already differ in the last bit.
EXACT = ["logistic_regression", "svm", "lightgbm"]


@pytest.fixture(scope="module")
def scheduler():
    """A 2-worker cluster in this process, reached through its TCP address."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


def _spec(tmp_path: Path, cluster: str | None, **extra):
    return parse_spec({
        "name": "pima-cluster",
        "data": {"dataset": "pima_tr"},
        "target": "type",
        "positive_class": "Yes",
        "models": [*EXACT, "random_forest"],
        "bootstrap": 100,
        "validation": {"nested": False},
        "cluster": cluster,
        "output_dir": str(tmp_path / (cluster or "serial").replace(":", "-").replace("/", "")),
        **extra,
    })


def _same_results(serial, clustered) -> None:
    assert clustered.best_name == serial.best_name
    assert clustered.candidates.keys() == serial.candidates.keys()
    for name in EXACT:
        a, b = serial.candidates[name], clustered.candidates[name]
        np.testing.assert_array_equal(b.oof_proba, a.oof_proba, err_msg=name)
        assert {k: v.value for k, v in b.metrics.items()} == pytest.approx(
            {k: v.value for k, v in a.metrics.items()}, nan_ok=True, rel=0, abs=0
        )
    np.testing.assert_allclose(
        clustered.candidates["random_forest"].oof_proba,
        serial.candidates["random_forest"].oof_proba, rtol=0, atol=1e-12,
    )


def test_study_on_a_cluster_matches_the_serial_run(tmp_path, scheduler):
    serial = run_study(_spec(tmp_path, None), quiet=True, save=False)
    clustered = run_study(_spec(tmp_path, scheduler), quiet=True)
    _same_results(serial, clustered)
    assert active_client() is None  # the run disconnects afterwards
    assert clustered.model_dir.is_dir()


class _FailsOnRow(ClassifierMixin, BaseEstimator):
    """Synthetic failure: fitting on a training set that holds row position 3 fails."""

    def fit(self, X, y):
        if 3 in X.index:
            raise ValueError("no value in row 2")
        self.classes_ = np.unique(y)
        self.model_ = LogisticRegression(max_iter=1000).fit(X, y)
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def test_a_failing_fold_on_a_cluster_is_reported_like_in_this_process(scheduler):
    frame = load_dataset("pima_tr")
    X, y = frame.drop(columns=["type"]), (frame["type"] == "Yes").to_numpy().astype(int)
    folds = internal_folds(y, None, n_splits=3, seed=0)
    rows = np.arange(101, 101 + len(y))
    estimators = {"fails": _FailsOnRow(), "works": LogisticRegression(max_iter=1000)}
    serial = cross_validate_each(estimators, X, y, folds, 2, row_numbers=rows)
    with on_cluster(scheduler):
        done = []
        clustered = cross_validate_each(
            estimators, X, y, folds, 2, row_numbers=rows,
            on_done=lambda name, run: done.append(name),
        )
    assert done == ["fails", "works"]
    for run in (serial, clustered):
        assert isinstance(run["fails"], FoldError)
        assert "training" in str(run["fails"]) and run["fails"].rows
    assert str(clustered["fails"]) == str(serial["fails"])
    assert clustered["fails"].rows == serial["fails"].rows
    np.testing.assert_array_equal(clustered["works"].oof, serial["works"].oof)


def test_fan_out_keeps_the_order_of_the_calls(scheduler):
    seen = []
    with on_cluster(scheduler) as client:
        assert client is not None and active_client() is client
        out = fan_out(pow, [(k, 2) for k in range(12)], on_result=seen.append)
    assert out == seen == [k * k for k in range(12)]


@pytest.mark.parametrize(
    ("address", "ok"),
    [("local:2", True), ("tcp://10.0.0.5:8786", True), ("scheduler:8786", True),
     ("local:0", False), ("local", False), ("http://x", False), ("10.0.0.5", False)],
)
def test_cluster_addresses_are_checked(address, ok):
    if ok:
        assert check_address(address) == address
    else:
        with pytest.raises(ValueError, match="cluster"):
            check_address(address)


def test_a_bad_cluster_in_the_spec_names_the_field(tmp_path):
    from medpredict.data.errors import SpecError
    from medpredict.spec import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ndata: {dataset: pima_tr}\ntarget: type\ncluster: 'local:zero'\n")
    with pytest.raises(SpecError, match="cluster"):
        load_spec(path)


def test_serial_runs_never_import_dask():
    code = (
        "import sys; from medpredict.spec import parse_spec; from medpredict.study import "
        "run_study; spec = parse_spec({'name': 'd', 'data': {'dataset': 'pima_tr'}, "
        "'target': 'type', 'models': ['logistic_regression'], 'bootstrap': 20, "
        "'validation': {'nested': False}}); "
        "run_study(spec, quiet=True, save=False); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def _dask(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "dask"), *args]


@pytest.mark.slow
def test_a_study_runs_through_a_scheduler_and_two_worker_processes(tmp_path):
    """Real processes: ``dask scheduler`` and two ``dask worker``, reached by address."""
    scheduler_file = tmp_path / "scheduler.json"
    env = os.environ | {"OMP_NUM_THREADS": "1", "LOKY_MAX_CPU_COUNT": "1"}
    processes = [subprocess.Popen(
        _dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(scheduler_file)),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(subprocess.Popen(
                _dask("worker", address, "--nthreads", "1", "--nworkers", "1",
                      "--no-dashboard", "--local-directory", str(tmp_path)),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            workers = set(client.run(os.getpid).values())
        assert len(workers) == 2 and os.getpid() not in workers
        serial = run_study(_spec(tmp_path, None), quiet=True, save=False)
        clustered = run_study(_spec(tmp_path, address), quiet=True)
        _same_results(serial, clustered)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(30)
