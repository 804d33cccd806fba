"""The HTML report's screenshots in docs/: the report of examples/ with every variant, and a
planted regression against a baseline (two "releases" of a small project: in the second, one
model's ONNX file went through a graph tool that scaled a weight by 2%, one test is new and one
is gone). Needs Chromium and the playwright package (scripts/setup.sh installs both).

    .venv/bin/python scripts/report-screenshots.py

Everything it runs goes to a temporary directory; only docs/report-*.png are written here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
VARIANTS = "ort-cpu,ort-cpu-noopt,onnx-reference,ort-gpu,int8-dynamic,int8-static,fp16"

RELEASE = '''
import numpy as np
import onnx
import pytest
import torch

import onnxparity as op


class Mlp(torch.nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.GELU(), torch.nn.Linear(width, 4))

    def forward(self, x):
        return self.net(x)


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def edited(model, tmp_path, scale):
    """The model's export after a graph tool scaled its first weight (scale 1: untouched)."""
    torch.onnx.export(model, (torch.zeros(2, 16),), str(tmp_path / "m.onnx"), dynamo=True,
                      input_names=["x"], dynamic_shapes=({{0: torch.export.Dim("batch", max=64)}},))
    proto = onnx.load(str(tmp_path / "m.onnx"))
    first = proto.graph.initializer[0]
    first.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(first) * np.float32(scale), first.name))
    return proto


VECTORS = dict(inputs=[op.Input("x", ("batch", 16))], dims={{"batch": op.Dim(1, 8)}})


@pytest.mark.onnx_parity(**VECTORS, variants=["ort-cpu", "int8-dynamic"])
def test_ranker(onnx_parity, tmp_path):
    torch.manual_seed(0)
    model = Mlp().eval()
    onnx_parity.check(model, onnx=edited(model, tmp_path, {scale}))


@pytest.mark.onnx_parity(inputs=[op.Input("x", ("batch", 3, 16, 16))], dims={{"batch": op.Dim(1, 4)}},
                         variants=["ort-cpu", "fp16"], latency=op.Latency(p50_ms=50))
def test_thumbnailer(onnx_parity):
    torch.manual_seed(1)
    onnx_parity.check(Cnn().eval())


@pytest.mark.onnx_parity(**VECTORS)
def test_{extra}(onnx_parity):
    torch.manual_seed(2)
    onnx_parity.check(Mlp(32).eval())
'''


def pytest(where: str, *args: str) -> None:
    """A fresh run (no results reused from the persistent cache): the pictures show real runs."""
    command = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--onnx-parity-cache=off", *args]
    subprocess.run(command, cwd=where, check=False)


def shoot(page: str, out: str, click: str | None) -> None:
    from playwright.sync_api import sync_playwright

    browser_path = next(
        shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": 1320, "height": 900})
        view.goto("file://" + page)
        if click:
            view.locator(f'button.cell[data-id$="{click}"]').click()
            view.wait_for_timeout(200)
            view.evaluate("window.scrollTo(0, 0)")
        view.screenshot(path=out, full_page=True)
        browser.close()
    print("wrote", out)


def main() -> None:
    scratch = tempfile.mkdtemp(prefix="onnxparity-screens-")
    try:
        report, page = os.path.join(scratch, "examples.json"), os.path.join(scratch, "examples.html")
        pytest(
            ROOT,
            "--onnx-parity",
            "examples/",
            "--ignore-glob=examples/test_failures*",
            f"--onnx-parity-variants={VARIANTS}",
            f"--onnx-parity-report={report}",
            f"--onnx-parity-html={page}",
            f"--onnx-parity-reproducers={os.path.join(scratch, 'reproducers')}",
        )
        shoot(page, os.path.join(ROOT, "docs", "report-examples.png"), "test_tiny_encoder[int8-static]")
        project = os.path.join(scratch, "project")
        os.makedirs(project)
        for release, scale, extra in (("r1", 1.0, "archiver"), ("r2", 1.02, "summarizer")):
            with open(os.path.join(project, "test_models.py"), "w") as f:
                f.write(RELEASE.format(scale=scale, extra=extra))
            pytest(
                project, "--onnx-parity", f"--onnx-parity-report={os.path.join(scratch, release + '.json')}"
            )
        regression = os.path.join(scratch, "regression.html")
        subprocess.run(
            [
                PYTHON,
                "-m",
                "onnxparity.cli",
                "report",
                "html",
                os.path.join(scratch, "r2.json"),
                "--baseline",
                os.path.join(scratch, "r1.json"),
                "-o",
                regression,
            ],
            check=True,
        )
        shoot(regression, os.path.join(ROOT, "docs", "report-regression.png"), "test_ranker[ort-cpu]")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
