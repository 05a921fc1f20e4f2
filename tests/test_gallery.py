"""The index.html gallery: self-contained, relative links that resolve, failures listed."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import numpy as np
import onnx
from PIL import Image

import aeq_onnx
from aeq_onnx.render.gallery import write_gallery
from tests.helpers_models import small_cnn


def test_gallery_links_are_relative_and_resolve(tmp_path: Path) -> None:
    photos = tmp_path / "my photos"
    photos.mkdir()
    for i in range(3):
        array = np.random.default_rng(i).integers(0, 256, (10, 12, 3), dtype=np.uint8)
        Image.fromarray(array).save(photos / f"photo {i}.png")
    model = tmp_path / "model.onnx"
    onnx.save(small_cnn(), model)
    out = tmp_path / "gallery out"
    report = aeq_onnx.explain_images(model, [photos, tmp_path / "gone.jpg"], preset="unit",
                                     out=out, device="cpu",
                                     labels=["<cat> & co", "dog", "car", "cup"],
                                     target_name="<cat> & co")
    assert report.gallery == out / "index.html"
    text = report.gallery.read_text(encoding="utf-8")
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert len(links) == 3 * 5  # per result: table png+npy; figure link, img, npy
    for link in links:
        assert not link.startswith(("/", "http", "file:")) and ".." not in link
        assert (out / unquote(link)).is_file()
    assert "<cat>" not in text and "&lt;cat&gt; &amp; co" in text  # names are escaped
    assert "gone.jpg" in text and "Failed" in text
    assert "<script" not in text and "stylesheet" not in text  # self-contained


def test_gallery_without_results(tmp_path: Path) -> None:
    index = write_gallery(tmp_path, [], [("a.jpg", "cannot read")], title="empty")
    text = index.read_text(encoding="utf-8")
    assert "<title>empty</title>" in text and "a.jpg: cannot read" in text


def test_gallery_rows(tmp_path: Path) -> None:
    png, npy = tmp_path / "sub" / "x.1-a.png", tmp_path / "sub" / "x.1-a.npy"
    result = SimpleNamespace(source="x.png", class_name="a", class_index=1, score=0.5,
                             logit=2.0, png=png, npy=npy, provider="CPUExecutionProvider",
                             seconds=0.01)
    text = write_gallery(tmp_path, [result]).read_text(encoding="utf-8")
    assert 'src="sub/x.1-a.png"' in text and 'href="sub/x.1-a.npy"' in text
    assert "0.5000" in text and "10.0 ms" in text and "Failed" not in text
