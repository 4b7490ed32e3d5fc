"""Where independent fits run: in this process, or on a Dask cluster through joblib.

A study's cross-validation fits (candidate x fold), its bootstrap resamples and
partitioned batch scoring are lists of independent calls. :func:`fan_out` runs such
a list in order in this process, or, inside :func:`on_cluster`, as tasks on a Dask
cluster via joblib's ``dask`` backend, which sends the data the calls share to the
cluster once. Results come back in the order of the calls either way, so a study
run on a cluster gives the same out-of-fold predictions as the same study run here.

Nothing imports Dask unless a cluster is asked for. The fan-out goes through
joblib, so another joblib backend (e.g. Ray's) can take its place in Python code.

An address is ``local:N`` (start a local cluster of N single-threaded worker
processes for this run and stop it afterwards) or a running scheduler's address
(``tcp://host:8786``, or ``host:8786``).

Examples
--------
>>> fan_out(pow, [(2, 3), (3, 2)])
[8, 9]
>>> with on_cluster(None) as client:
...     print(client, fan_out(abs, [(-1,)]))
None [1]
>>> check_address("local:0")
Traceback (most recent call last):
    ...
ValueError: cluster 'local:0': a local cluster needs at least 1 worker (local:N, N >= 1)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import joblib

from medpredict.optional import require

_LOCAL = re.compile(r"local:(\d+)")
_REMOTE = re.compile(r"(tcp|tls)://[^\s:/]+:\d+|[^\s:/]+:\d+")
# Per worker process: one thread for every numeric library, so N workers use N cores.
_ONE_THREAD = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT",
    )
}


class _Active:
    client: Any = None
    fanning_out: bool = False


def check_address(address: str) -> str:
    """``address`` if it names a local cluster (``local:N``) or a scheduler (``host:port``).

    Raises
    ------
    ValueError
        Naming the address and the forms accepted.
    """
    local = _LOCAL.fullmatch(address)
    if local:
        if int(local.group(1)) < 1:
            raise ValueError(
                f"cluster {address!r}: a local cluster needs at least 1 worker (local:N, N >= 1)"
            )
        return address
    if _REMOTE.fullmatch(address):
        return address
    raise ValueError(
        f"cluster {address!r}: expected local:N (N worker processes on this machine) or a "
        "Dask scheduler's address such as tcp://10.0.0.5:8786"
    )


@contextmanager
def on_cluster(address: str | None) -> Iterator[Any]:
    """Run :func:`fan_out` calls on the cluster at ``address`` (None: in this process).

    Yields the ``distributed.Client`` (None without a cluster). A ``local:N`` cluster
    is started here and stopped on exit; a scheduler given by address is only
    connected to. Nested use keeps the outer cluster.

    Raises
    ------
    ValueError
        If the address is malformed (:func:`check_address`).
    OSError
        If no scheduler answers at the address within 30 s.
    """
    if address is None or _Active.client is not None:
        yield _Active.client
        return
    check_address(address)
    require("distributed", extra="cluster")
    from distributed import Client, LocalCluster

    local = _LOCAL.fullmatch(address)
    cluster = None
    if local:
        cluster = LocalCluster(
            n_workers=int(local.group(1)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=_ONE_THREAD,
        )
        client = Client(cluster)
    else:
        client = Client(address, timeout="30s")
    _Active.client = client
    try:
        yield client
    finally:
        _Active.client = None
        client.close()
        if cluster is not None:
            cluster.close()


def active_client() -> Any:
    """The ``distributed.Client`` of the enclosing :func:`on_cluster`, else None."""
    return _Active.client


def fan_out(
    function: Callable[..., Any],
    calls: Iterable[tuple[Any, ...]],
    on_result: Callable[[Any], None] = lambda result: None,
) -> list[Any]:
    """``[function(*args) for args in calls]``, on the active cluster if there is one.

    Parameters
    ----------
    function : a module-level function (it is sent to the workers by reference).
    calls : the arguments of each call; may be a generator, read as calls are sent
        (in this process, one call at a time, so it can stop early).
    on_result : called here with each result, in the order of the calls, as soon as
        it and the ones before it are done.

    An exception raised by a call propagates and cancels the calls not yet run; a
    caller that wants the other results returns errors instead of raising them.
    A fan-out started from ``on_result`` of another runs here, while the cluster
    works on the outer calls.
    """
    results = []
    if _Active.client is None or _Active.fanning_out:
        for args in calls:
            results.append(function(*args))
            on_result(results[-1])
        return results
    _Active.fanning_out = True
    try:
        with joblib.parallel_config(backend="dask"):
            parallel = joblib.Parallel(n_jobs=-1, return_as="generator")
            tasks = (joblib.delayed(_on_worker)(function, *args) for args in calls)
            for result in parallel(tasks):
                results.append(result)
                on_result(result)
    finally:
        _Active.fanning_out = False
    return results


def _on_worker(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` with the libraries' own parallel loops kept on this worker.

    joblib hands its backend on to the calls it runs, so a scikit-learn step inside
    a task would otherwise send its own small loops back to the cluster.
    """
    with joblib.parallel_config(backend="threading"):
        return function(*args)
