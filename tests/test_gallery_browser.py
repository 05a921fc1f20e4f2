"""The gallery in a real browser: headless Chromium opens index.html, every image loads.

`make test` installs Debian's `chromium` when it is missing; run by hand without it, this test
is skipped with that reason printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import aeq_onnx
from tests.helpers_models import small_cnn

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--virtual-time-budget=10000"]
#: Appended to a copy of the gallery: the title reports how many images decoded.
PROBE = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
         " const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;"
         " document.title = 'LOADED ' + ok + ' OF ' + imgs.length; });</script>")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery of 4 photos (one corrupt) explained by a tiny model."""
    root = tmp_path_factory.mktemp("browser")
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"photo {i}.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    onnx.save(small_cnn(), root / "model.onnx")
    report = aeq_onnx.explain_images(root / "model.onnx", [photos], preset="unit",
                                     out=root / "out", device="cpu", top_k=2)
    assert len(report.results) == 6 and len(report.failures) == 1
    return report.gallery


def _chromium(*args: str, cwd: Path) -> str:
    done = subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(make test installs it)")
def test_every_gallery_image_loads_in_chromium(gallery: Path) -> None:
    probe = gallery.with_name("index.probe.html")
    probe.write_text(gallery.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")
    dom = _chromium("--dump-dom", probe.as_uri(), cwd=gallery.parent)
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None and title.group(1) == "LOADED 6 OF 6", dom[:500]
    shot = gallery.with_name("screenshot.png")
    _chromium(f"--screenshot={shot}", "--window-size=1200,900", gallery.as_uri(),
              cwd=gallery.parent)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (900, 1200)
    assert pixels.std() > 10  # not a blank page: photos and heatmaps were drawn
