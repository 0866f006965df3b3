"""report.html: contents, self-containment, and a real browser that loads every image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from aekit.cli import main

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Counts the images once the page has loaded; injected into a copy, the report itself has no script.
PROBE = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter((i) => !i.complete || i.naturalWidth === 0).length;
  document.title = `probe images=${imgs.length} broken=${broken}`;
});</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("AEKIT_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (AEKIT_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("chromium is not installed (scripts/setup.sh installs it when run as root)")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for name, model in (("ae", "dense"), ("vae", "vae")):
        argv = ["train", "--model", model, "--data", "mnist-5k", "--limit", "600", "--epochs", "2"]
        assert main([*argv, "--latent-dim", "4", "--out", str(base / name), "--quiet"]) == 0
    return base / "ae", base / "vae"


def test_every_run_ends_with_a_self_contained_report(runs):
    page = (runs[1] / "report.html").read_text()
    for section in ("Data", "Training", "Test metrics", "Originals and reconstructions", "Latent map"):
        assert f"<h2>{section}" in page
    assert "KL per latent dimension" in page and "Samples from the prior" in page and "Interpolation" in page
    assert "Environment" in page and "torch" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)  # nothing fetched
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 6
    assert "<script" not in page
    assert "KL per latent dimension" not in (runs[0] / "report.html").read_text()  # only where it applies


def test_report_and_compare_commands_for_several_runs(runs, tmp_path, capsys):
    out = tmp_path / "both.html"
    assert main(["report", *map(str, runs), "-o", str(out), "--limit", "200"]) == 0
    page = out.read_text()
    assert page.count('<section class="run">') == 2
    assert main(["report", *map(str, runs)]) == 2  # several runs need -o
    assert "-o" in capsys.readouterr().err
    assert main(["compare", *map(str, runs), "--limit", "200"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["run", "model", "epochs"] and "test/mse" in lines[0]
    assert len(lines) == 3 and lines[2].split()[1] == "vae"


def test_headless_chromium_loads_every_image_and_draws_a_page(runs, tmp_path):
    chromium = _chromium()
    page = (runs[1] / "report.html").read_text().replace("</body>", PROBE + "</body>")
    probe = tmp_path / "probe.html"
    probe.write_text(page)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    counts = re.search(r"probe images=(\d+) broken=(\d+)", dom)
    assert counts, f"the page did not finish loading in chromium: {dom[:300]!r}"
    assert int(counts[1]) >= 6 and int(counts[2]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            *flags,
            f"--screenshot={shot}",
            "--window-size=400,2000",
            (runs[1] / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2000, 400)
    assert pixels.std() > 20  # not a blank page
    assert (pixels < 128).mean() > 0.02  # text and figures drawn
