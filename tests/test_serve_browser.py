"""The clinician web page in headless Chromium against a real uvicorn on 127.0.0.1.

A real Pima test-set patient is pasted into the form; the page must show the same
risk as the API, a factor chart and the conformal set; moving a what-if slider must
move the risk. A screenshot is saved to ``test-artifacts/``. Chromium comes from
Debian (``bash .ci/install-browser.sh``); Playwright only drives it.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright
from serve_support import REPO, keys, pima_model, pima_test_patients, workdir

from medpredict.serve.app import create_app
from medpredict.serve.config import ServeSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Path]]:
    audit = workdir() / "audit-browser.db"
    settings = ServeSettings(keys_file=keys()["file"], audit_url=f"sqlite:///{audit}")
    port = free_port()
    config = uvicorn.Config(create_app([pima_model()], settings), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", audit
    uv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    assert CHROMIUM.exists(), "Chromium is missing: run `bash .ci/install-browser.sh`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def test_enter_patient_get_risk_and_explore_what_if(server, page):
    base, audit = server
    patient = max(pima_test_patients(30), key=lambda r: r["glu"])
    api_risk = httpx.post(
        f"{base}/v1/models/pima/predict", json={"rows": [patient], "purpose": "test"},
        headers={"X-API-Key": keys()["clinician"]},
    ).json()["predictions"][0]["risk"]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))

    page.goto(f"{base}/")
    page.fill("#api-key", "mpk_wrong")
    page.click("#connect")
    expect(page.locator("#status")).to_have_text("key not accepted")
    problems.clear()  # the browser logs the refused request (401) as a console error

    page.fill("#api-key", keys()["clinician"])
    page.click("#connect")
    expect(page.locator("#workspace")).to_be_visible()
    page.locator("details summary").click()
    header = ",".join(patient)
    values = ",".join(f"{v:g}" for v in patient.values())
    page.fill("#paste", f"{header}\n{values}")
    page.click("#fill")
    expect(page.locator("#field-glu")).to_have_value(f"{patient['glu']:g}")

    page.click("#predict")
    expect(page.locator("#result")).to_be_visible()
    shown = page.locator("#risk-value").inner_text()
    assert float(shown.rstrip("%")) == pytest.approx(100 * api_risk, abs=0.51)
    expect(page.locator("#factors svg rect.factor-bar")).to_have_count(5)
    expect(page.locator("#uncertainty")).to_contain_text("Conformal prediction set {")
    expect(page.locator("#risk-band")).to_have_text(re.compile("low|moderate|high"))

    before = page.locator("#whatif-risk").inner_text()
    assert before == shown
    slider = page.locator("#whatif-glu")
    slider.focus()
    slider.press("Home")  # glucose to the lowest value seen in training
    expect(page.locator("#whatif-risk")).not_to_have_text(before)
    expect(page.locator("#whatif-delta")).to_contain_text("−")
    after = float(page.locator("#whatif-risk").inner_text().rstrip("%"))
    assert after < float(before.rstrip("%"))
    assert page.locator("#field-glu").input_value() == f"{patient['glu']:g}"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-web-page.png"), full_page=True)
    assert problems == []
    with sqlite3.connect(audit) as connection:
        actions = [a for (a,) in connection.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert actions[:2] == ["predict:test", "predict"]
    assert set(actions[2:]) == {"predict:what-if"}


def test_page_loads_no_external_assets(server, page):
    base, _ = server
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{base}/ui/")
    page.wait_for_load_state("networkidle")
    assert requested and all(url.startswith(base) for url in requested)
