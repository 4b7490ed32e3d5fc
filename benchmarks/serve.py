"""Prediction-service latency and throughput against a bare ``predict_proba`` call.

Trains the default model (the bundled Pima study, ``medpredict/examples/pima.yaml``,
whose model directory holds the trust layer's conformal predictor and explanation
background), adds the example FHIR mapping,
starts ``medpredict serve`` under uvicorn on 127.0.0.1 in a separate process, and
sends single-patient requests (real Pima test-set patients, explanations on):

1. open loop at a fixed rate (default 100 requests/s for 60 s; each request is sent
   at its scheduled time whatever the state of earlier ones, so queueing shows up in
   the latencies): p50/p99 latency, achieved throughput, errors;
2. closed loop with a few concurrent clients for a short time: peak throughput.

Then checks that the audit log holds exactly one row per answered request and
that its chain verifies, and times the bare model (``estimator.predict_proba`` on
one row) and the in-process prediction with explanations in this process for the
ratios. Only 127.0.0.1 is ever contacted; every loop is bounded in count and time.

Usage::

    MEDPREDICT_DATA_DIR=../shared/data .venv/bin/python benchmarks/serve.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from medpredict.data.datasets import load_dataset
from medpredict.serve.audit import AuditLog, verify_chain
from medpredict.serve.auth import new_api_key
from medpredict.serve.models import ServedModel
from medpredict.serve.package import add_fhir_mapping
from medpredict.spec import load_spec
from medpredict.study import run_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "medpredict" / "examples" / "pima.yaml"
MAPPING = ROOT / "examples" / "fhir-mapping-pima.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "serve.md"
FEATURES = ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]


def train(workdir: Path) -> Path:
    spec = load_spec(SPEC).model_copy(update={"output_dir": workdir / "run", "bootstrap": 200})
    result = run_study(spec, quiet=True)
    return add_fhir_mapping(result.model_dir, yaml.safe_load(MAPPING.read_text())["models"]["pima"])


def drop_audit_table(url: str) -> None:
    """Start a scratch PostgreSQL database's audit log afresh."""
    from sqlalchemy import create_engine, text

    with create_engine(url).begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS audit_log"))
        connection.execute(text("DROP FUNCTION IF EXISTS audit_log_refuse"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    model_dir: Path, workdir: Path, workers: int = 1, audit_url: str | None = None
) -> tuple[subprocess.Popen, str, str, str]:
    key, entry = new_api_key("benchmark", ["clinician"])
    keys_file = workdir / "keys.json"
    keys_file.write_text(json.dumps({"keys": [entry]}))
    audit_url = audit_url or f"sqlite:///{workdir / 'audit.db'}"
    port = free_port()
    env = os.environ | {
        "MEDPREDICT_RATE_LIMIT_PER_MINUTE": "1000000",
        "MEDPREDICT_RATE_LIMIT_BURST": "100000",
    }
    command = [
        sys.executable, "-c",
        "import logging, sys; from pathlib import Path; from medpredict.serve.cli import "
        "serve_command; logging.disable(logging.INFO); serve_command("
        f"model=[Path({str(model_dir)!r})], port={port}, keys_file=Path({str(keys_file)!r}), "
        f"audit_url={audit_url!r}, host='127.0.0.1', workers={workers})",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base, key, audit_url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the service did not start within 120 s")


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost little CPU."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def payloads(patients: list[dict]) -> list[bytes]:
    return [json.dumps({"rows": [p], "purpose": "test"}).encode() for p in patients]


async def open_loop(base: str, key: str, patients: list[dict], rate: float,
                    duration: float, connections: int = 32) -> dict:
    """Requests due at fixed times, sent over a pool of connections.

    Latency runs from each request's scheduled time to its answer, so time spent
    waiting for a free connection or in the server's queue is counted.
    """
    host, port = base.removeprefix("http://").split(":")
    total = int(rate * duration)
    bodies = payloads(patients)
    latencies = np.full(total, np.nan)
    statuses = np.zeros(total, dtype=int)
    due: asyncio.Queue[int | None] = asyncio.Queue()
    start = time.perf_counter()

    async def worker() -> None:
        connection = Connection(host, int(port), key)
        while (i := await due.get()) is not None:
            try:
                statuses[i] = await asyncio.wait_for(
                    connection.post("/v1/models/pima/predict", bodies[i % len(bodies)]), 30)
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
                statuses[i] = -1
                await connection.close()
                connection = Connection(host, int(port), key)
            latencies[i] = time.perf_counter() - (start + i / rate)
        await connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(i)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    ok = statuses == 200
    return {"sent": total, "answered": int(ok.sum()), "errors": int((~ok).sum()),
            "elapsed": elapsed, "latency_ms": latencies[ok] * 1000}


async def closed_loop(base: str, key: str, patients: list[dict], clients: int,
                      duration: float) -> dict:
    """``clients`` callers, each sending its next request when the last is answered."""
    host, port = base.removeprefix("http://").split(":")
    bodies = payloads(patients)
    done: list[float] = []
    errors = 0

    async def caller(offset: int) -> None:
        nonlocal errors
        connection = Connection(host, int(port), key)
        i, end = offset, time.perf_counter() + duration
        while time.perf_counter() < end:
            sent = time.perf_counter()
            status = await connection.post("/v1/models/pima/predict", bodies[i % len(bodies)])
            if status == 200:
                done.append(time.perf_counter() - sent)
            else:
                errors += 1
            i += clients
        await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    return {"answered": len(done), "errors": errors, "elapsed": elapsed,
            "latency_ms": np.array(done) * 1000}


def time_calls(fn, rows: list[pd.DataFrame], repeats: int) -> np.ndarray:
    out = np.empty(repeats)
    for i in range(repeats):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        fn(row)
        out[i] = time.perf_counter() - start
    return out * 1000


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--quick", action="store_true", help="10 s of load, short runs")
    parser.add_argument("--workers", type=int, default=1, help="service processes")
    parser.add_argument("--audit-url", help="audit database (default: SQLite in a temp dir); "
                        "a PostgreSQL scratch database loses its audit_log table first")
    args = parser.parse_args()
    if args.audit_url and args.audit_url.startswith("postgresql"):
        drop_audit_table(args.audit_url)
    duration = 10.0 if args.quick else args.duration

    patients_frame = load_dataset("pima_te")[FEATURES].astype(float)
    patients = patients_frame.to_dict(orient="records")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="medpredict-bench-serve-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        model_dir = train(workdir)
        train_seconds = time.perf_counter() - started
        served = ServedModel.from_dir(model_dir)
        rows = [patients_frame.iloc[[i]] for i in range(len(patients_frame))]
        estimator = served.loaded.estimator
        repeats = 200 if args.quick else 1000
        time_calls(estimator.predict_proba, rows, 50)
        bare = time_calls(estimator.predict_proba, rows, repeats)
        full = time_calls(lambda r: served.predict(r.to_dict(orient="records")), rows,
                          repeats // 5)

        process, base, key, audit_url = start_server(
            model_dir, workdir, args.workers, args.audit_url
        )
        try:
            asyncio.run(open_loop(base, key, patients, args.rate, 2.0))  # warm-up
            warm_rows = AuditLog(audit_url).count()
            paced = asyncio.run(open_loop(base, key, patients, args.rate, duration))
            audit_rows = AuditLog(audit_url).count() - warm_rows
            peak = asyncio.run(closed_loop(base, key, patients, 4, 5.0 if args.quick else 15.0))
        finally:
            process.terminate()
            process.wait(30)
        chain = verify_chain(audit_url)
        load_after = os.getloadavg()
        # the CPU share varies during a run: time the bare call again afterwards and
        # compare with the mean of both medians
        bare_after = time_calls(estimator.predict_proba, rows, repeats)
        full_after = time_calls(lambda r: served.predict(r.to_dict(orient="records")), rows,
                                repeats // 5)
    bare_p50 = (pct(bare, 50) + pct(bare_after, 50)) / 2
    full_p50 = (pct(full, 50) + pct(full_after, 50)) / 2

    lat = paced["latency_ms"]
    rows_md = [
        ("bare `predict_proba`, 1 row, in process (before / after the load)",
         f"{pct(bare, 50):.2f} / {pct(bare_after, 50):.2f}",
         f"{pct(bare, 99):.2f} / {pct(bare_after, 99):.2f}", "", "1.0×"),
        ("risk + band + conformal set + top 5 factors, in process (before / after)",
         f"{pct(full, 50):.2f} / {pct(full_after, 50):.2f}",
         f"{pct(full, 99):.2f} / {pct(full_after, 99):.2f}", "", f"{full_p50 / bare_p50:.1f}×"),
        (f"HTTP, open loop at {args.rate:g} req/s for {duration:g} s", f"{pct(lat, 50):.2f}",
         f"{pct(lat, 99):.2f}", f"{paced['answered'] / paced['elapsed']:.1f}",
         f"{pct(lat, 50) / bare_p50:.1f}×"),
        ("HTTP, closed loop, 4 concurrent clients", f"{pct(peak['latency_ms'], 50):.2f}",
         f"{pct(peak['latency_ms'], 99):.2f}", f"{peak['answered'] / peak['elapsed']:.1f}",
         f"{pct(peak['latency_ms'], 50) / bare_p50:.1f}×"),
    ]
    lines = [
        "# Prediction service: latency and throughput"
        + (f", {args.workers} workers" if args.workers > 1 else ""),
        "",
        f"Model: the bundled Pima study's selected model ({served.metadata.model}), "
        f"as the study saves it plus the example FHIR mapping; requests are single real "
        f"patients from Ripley's Pima test set, explanations and conformal sets on, audit "
        f"log in {'PostgreSQL' if audit_url.startswith('postgresql') else 'SQLite (WAL)'}. "
        f"Server: `medpredict serve --workers {args.workers}` (uvicorn, {args.workers} "
        f"process{'es' if args.workers > 1 else ''}) on "
        f"127.0.0.1; load generator: a minimal asyncio HTTP/1.1 client (32 keep-alive "
        f"connections) in another process on the same machine; latency counts from each "
        f"request's scheduled time.",
        "",
        "| path | p50 (ms) | p99 (ms) | throughput (req/s) | p50 vs bare |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {a} | {b} | {t} | {r} |" for n, a, b, t, r in rows_md],
        "",
        "Ratios use the mean of the bare call's medians before and after the load.",
        "",
        f"- Targets (2 cores, {args.rate:g} req/s): p50 ≤ 10 ms, p99 ≤ 50 ms → measured p50 "
        f"{pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms "
        f"({'met' if pct(lat, 50) <= 10 and pct(lat, 99) <= 50 else 'NOT met'}).",
        f"- Lost requests: sent {paced['sent']}, answered {paced['answered']}, errors "
        f"{paced['errors']}; audit rows written during the run {audit_rows} "
        f"({'equal to' if audit_rows == paced['answered'] else 'DIFFERENT from'} answered); "
        f"audit chain {'intact' if chain.ok else 'BROKEN'} over {chain.rows} rows.",
        f"- Closed-loop errors: {peak['errors']}.",
        *(
            [f"- The service answered {paced['answered'] / paced['elapsed']:.1f} req/s of the "
             f"{args.rate:g} offered: on the CPU share it had it could not keep up, so requests "
             "queued and the open-loop latencies are mostly waiting time."]
            if paced["answered"] / paced["elapsed"] < 0.98 * args.rate
            else []
        ),
        f"- Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; load average {load_before[0]:.1f} before and "
        f"{load_after[0]:.1f} after the run (the service and the load generator share the "
        "two cores)"
        + (": other work was sharing the CPU too, so these numbers are pessimistic."
           if load_before[0] > 1.0 else "; no other work was running."),
        f"- Training and packaging the model took {train_seconds:.0f} s (not part of the "
        "measurements).",
        "",
        "Command: `MEDPREDICT_DATA_DIR=../shared/data .venv/bin/python benchmarks/serve.py"
        + (" --quick" if args.quick else "")
        + (f" --rate {args.rate:g}" if args.rate != 100 else "")
        + (f" --workers {args.workers} --audit-url postgresql+psycopg://..." if args.workers > 1
           else "") + "`",
        "",
    ]
    out = RESULTS if args.workers == 1 else RESULTS.with_name(f"serve-{args.workers}-workers.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
