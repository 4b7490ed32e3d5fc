"""One worker that predicts and audits, coalescing requests that arrive together.

A scikit-learn pipeline and an explainer cost nearly the same for one row as for
dozens (the per-call overhead dominates), so requests waiting while a prediction
runs are answered together by the next call. Nothing waits on purpose: an idle
service answers a request at once, a busy one answers many per call. Each
request still gets its own audit row; a batch's rows are written in one
transaction, before any of its answers is released. A batch that fails is
retried request by request, so one caller's bad input never fails another's.

Examples
--------
>>> queue = PredictionQueue(AuditLog("sqlite://"))  # doctest: +SKIP
>>> future = queue.submit(model, model.validator.validate(rows),
...                       "dr-smith", "predict", digest)  # doctest: +SKIP
>>> predictions, seq = queue.run(future)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from medpredict.serve.audit import AuditEntry, AuditLog, AuditUnavailableError
from medpredict.serve.models import RowPrediction, ServedModel
from medpredict.serve.rows import ValidatedRows


def audit_output(predictions: list[RowPrediction]) -> list[dict[str, Any]]:
    """What the audit log keeps of an answer: no input values, no warnings text."""
    return [
        {
            "risk": p.risk,
            "band": p.band.label if p.band else None,
            "probabilities": p.probabilities,
            "prediction": p.prediction,
            "conformal_set": p.conformal_set,
            "factors": [[f["feature"], f["contribution"]] for f in p.factors or []],
        }
        for p in predictions
    ]


@dataclass
class _Job:
    model: ServedModel
    checked: ValidatedRows
    principal: str
    action: str
    input_sha256: str
    future: Future = field(default_factory=Future)


class PredictionQueue:
    """Serialise predictions through one worker thread, batching what is queued.

    Parameters
    ----------
    audit : the audit log every answer is written to before it is released.
    max_rows : most patient rows predicted in one call.
    timeout : seconds a request waits for its answer before failing.
    """

    def __init__(self, audit: AuditLog, max_rows: int = 512, timeout: float = 30.0) -> None:
        self.audit = audit
        self.max_rows = max_rows
        self.timeout = timeout
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(
        self,
        model: ServedModel,
        checked: ValidatedRows,
        principal: str,
        action: str,
        input_sha256: str,
    ) -> Future:
        """Queue one request; the future gives its predictions and audit row number."""
        job = _Job(model, checked, principal, action, input_sha256)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="medpredict-predict",
                                                 daemon=True)
                self._worker.start()
            self._queue.put(job)
        return job.future

    def run(self, future: Future) -> tuple[list[RowPrediction], int]:
        """Wait for a submitted request: its predictions and audit row number."""
        return future.result(self.timeout)

    async def answer(self, future: Future) -> tuple[list[RowPrediction], int]:
        """:meth:`run` for the event loop: waits without holding a thread."""
        return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)

    def close(self) -> None:
        """Stop the worker after the jobs already queued (a later request restarts it)."""
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                self._queue.put(None)
        if worker is not None:
            worker.join(self.timeout)

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, rows, stop = [first], len(first.checked.frame), False
            while rows < self.max_rows:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                rows += len(job.checked.frame)
            for model in {id(j.model): j.model for j in jobs}.values():
                self._answer(model, [j for j in jobs if j.model is model])
            if stop:
                return

    def _answer(self, model: ServedModel, jobs: list[_Job]) -> None:
        try:
            checked = jobs[0].checked if len(jobs) == 1 else ValidatedRows(
                pd.concat([j.checked.frame for j in jobs], ignore_index=True),
                [w for j in jobs for w in j.checked.warnings],
            )
            predictions = model.predict_checked(checked)
            parts, start = [], 0
            for job in jobs:
                end = start + len(job.checked.frame)
                parts.append(predictions[start:end])
                start = end
            entries = [
                AuditEntry(j.principal, j.action, model.identity, j.input_sha256,
                           audit_output(part))
                for j, part in zip(jobs, parts, strict=True)
            ]
            rows = self.audit.append_many(entries)
        except AuditUnavailableError as error:  # the store, not an input: no retry helps now
            for job in jobs:
                job.future.set_exception(error)
            return
        except Exception as error:  # every waiting request must learn of its own outcome
            if len(jobs) > 1:
                for job in jobs:
                    self._answer(model, [job])
            else:
                jobs[0].future.set_exception(error)
            return
        for job, part, row in zip(jobs, parts, rows, strict=True):
            job.future.set_result((part, row["seq"]))
