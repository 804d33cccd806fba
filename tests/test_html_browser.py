"""The HTML report in a real browser: headless Chromium (Debian's package; Playwright drives it
through ``executable_path``) loads a page with a passing and a failing item against a baseline.
It must render with no console errors, show one matrix cell per item, and reach the failing
item's diagnosis by a click; screenshots go to ``$ONNXPARITY_ARTIFACTS`` (CI uploads them).

Skipped with the reason where no browser is found, except in CI (``CI`` or
``ONNXPARITY_REQUIRE_BROWSER`` set), where a missing browser fails: ``scripts/setup.sh``
installs one."""

from __future__ import annotations

import os
import shutil

import pytest

from onnxparity.cli import main as cli

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> tuple[str | None, str]:
    """(the browser's path, why none) — Playwright's package and a Chromium binary."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "the playwright package is not installed (pip install 'onnxparity[dev]')"
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    return (
        (found, "")
        if found
        else (None, "no Chromium found (apt-get install chromium; scripts/setup.sh does)")
    )


@pytest.fixture(scope="module")
def browser_path():
    path, why = _browser()
    if path is None:
        if os.environ.get("CI") or os.environ.get("ONNXPARITY_REQUIRE_BROWSER"):
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    return path


BUDGETS = """
import numpy as np
import pytest
import onnxparity as op
from test_html_report import W, matmul


@pytest.mark.onnx_parity(
    inputs=[op.Input("x", ("batch", 8))], dims={"batch": op.Dim(1, 3)}, examples=4,
    opset=op.Opset(min=13, forbidden_ops=["Loop"]), latency=op.Latency(max_ratio=1000, at={"batch": 2}),
    variants=["ort-cpu", "int8-dynamic"],
)
def test_budgeted(onnx_parity):
    onnx_parity.check(onnx=matmul(W), reference=lambda x: [np.tanh(x.astype(np.float64) @ W.astype(np.float64))])
"""


def test_the_page_renders_and_a_failing_items_diagnosis_is_a_click_away(pytester, browser_path, capsys):
    from playwright.sync_api import sync_playwright

    from test_html_report import run

    _, baseline = run(pytester, "baseline")
    _, current = run(pytester, "current", scale=1.05, extra="added")
    page_path = pytester.path / "report.html"
    capsys.readouterr()
    assert cli(["report", "html", str(current), "--baseline", str(baseline), "-o", str(page_path)]) == 0
    artifacts = os.environ.get("ONNXPARITY_ARTIFACTS") or str(pytester.path)
    os.makedirs(artifacts, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            view = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            view.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
                ),
            )
            view.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            view.on(
                "request",
                lambda r: problems.append(f"network: {r.url}") if not r.url.startswith("file:") else None,
            )
            view.goto(page_path.as_uri())
            assert view.locator("button.cell").count() == 2  # one per item of this report
            assert view.locator("#changes-section").is_visible()
            assert "Got worse 1" in view.locator("#changes").inner_text()
            view.screenshot(path=os.path.join(artifacts, "report-overview.png"), full_page=True)
            assert not view.locator("#details").is_visible()
            view.locator("button.cell", has_text="FAIL").click()
            diagnosis = view.locator("#details-body pre.diagnosis")
            assert diagnosis.is_visible()
            assert diagnosis.inner_text().startswith("ort-cpu differs from the reference")
            assert view.locator("#details-body canvas").count() >= 3  # histograms and scatter drawn
            assert "passed → failed" in view.locator("#details-body").inner_text()
            view.screenshot(path=os.path.join(artifacts, "report-failing-item.png"), full_page=True)
            assert problems == []
            # every kind of item draws without an error: latency and opset budgets, a lossy variant
            pytester.makepyfile(test_page_budgets=BUDGETS)
            budgets = pytester.path / "budgets.json"
            inner = pytester.runpytest_inprocess(
                "--onnx-parity",
                f"--onnx-parity-report={budgets}",
                "-p",
                "no:cacheprovider",
                "test_page_budgets.py",
            )
            inner.assert_outcomes(passed=4)
            assert cli(["report", "html", str(budgets), "-o", str(page_path)]) == 0
            view.goto(page_path.as_uri())
            cells = view.locator("button.cell")
            assert cells.count() == 4
            for index in range(cells.count()):
                cells.nth(index).click()
                assert view.locator("#details-body canvas").count() >= 1
            assert problems == []
        finally:
            browser.close()
    assert os.path.getsize(os.path.join(artifacts, "report-failing-item.png")) > 10_000
