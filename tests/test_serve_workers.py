"""``medpredict serve --workers N``: several processes, one unbroken audit chain.

Real parts: the Pima model (real data), uvicorn worker processes and PostgreSQL
(``MEDPREDICT_TEST_POSTGRES_URL``, which CI sets; its own scratch database here).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from serve_support import keys, pima_model, pima_test_patients
from typer.testing import CliRunner

from medpredict.serve.audit import AuditLog, verify_chain
from medpredict.serve.cli import serve_command
from medpredict.serve.config import ServeSettings
from medpredict.serve.runner import check_workers

POSTGRES_URL = os.environ.get("MEDPREDICT_TEST_POSTGRES_URL")


def test_several_workers_on_sqlite_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="PostgreSQL audit log"):
        check_workers(2, ServeSettings(audit_url="sqlite:///audit.db"))
    check_workers(1, ServeSettings(audit_url="sqlite:///audit.db"))
    check_workers(4, ServeSettings(audit_url="postgresql+psycopg://u@h/db"))


def test_the_cli_refuses_workers_on_sqlite(tmp_path):
    import typer

    cli = typer.Typer()
    cli.command()(serve_command)
    result = CliRunner().invoke(cli, [
        "--model", str(pima_model()), "--keys-file", keys()["file"], "--workers", "2",
        "--audit-url", f"sqlite:///{tmp_path / 'audit.db'}",
    ])
    assert result.exit_code == 2
    assert "needs a PostgreSQL audit log" in result.output


def _scratch_database(url: str) -> str:
    """A database of its own, so this test never races the other PostgreSQL test."""
    from sqlalchemy import create_engine, text

    name = "medpredict_test_workers"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if exists is None:
            connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    scratch = url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(scratch)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS audit_log"))
        connection.execute(text("DROP FUNCTION IF EXISTS audit_log_refuse"))
    engine.dispose()
    return scratch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(POSTGRES_URL is None, reason="set MEDPREDICT_TEST_POSTGRES_URL to a "
                    "scratch PostgreSQL database (CI does)")
def test_two_workers_answer_concurrently_and_audit_every_answer():
    audit_url = _scratch_database(POSTGRES_URL)
    port = _free_port()
    code = (
        "from pathlib import Path; from medpredict.serve.cli import serve_command; "
        f"serve_command(model=[Path({str(pima_model())!r})], port={port}, "
        f"keys_file=Path({keys()['file']!r}), audit_url={audit_url!r}, workers=2)"
    )
    env = os.environ | {"MEDPREDICT_RATE_LIMIT_PER_MINUTE": "100000",
                        "MEDPREDICT_RATE_LIMIT_BURST": "10000"}
    server = subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        workers = psutil.Process(server.pid).children(recursive=True)
        assert len([w for w in workers if "multiprocessing" in " ".join(w.cmdline())]) >= 2
        patients = pima_test_patients(20)
        headers = {"X-API-Key": keys()["clinician"]}

        def ask(k: int) -> int:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                body = json.dumps({"rows": [patients[k % len(patients)]]})
                return client.post("/v1/models/pima/predict", content=body,
                                   headers={"Content-Type": "application/json"}).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(ask, range(200)))
    finally:
        server.terminate()
        server.wait(60)
    assert statuses.count(200) == 200
    assert AuditLog(audit_url).count() == 200
    report = verify_chain(audit_url)
    assert report.ok and report.rows == 200 and report.head_seq == 200
