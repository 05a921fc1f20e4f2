"""``aeq web`` without a browser: the files it writes, the explainer copy and its preset, the
class names, clear errors (too large, wrong onnxruntime-web, bad labels), the server's headers,
and a static check that the site references nothing outside its folder."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path

import onnx
import pytest
from web_models import ORT_WEB, tiny_imagenet, tiny_imagenet_explainer

import aeq_onnx
from aeq_onnx.cli import main
from aeq_onnx.errors import InputError
from aeq_onnx.render.presets import get_preset, preset_from_metadata
from aeq_onnx.run.runtime import is_explainer
from aeq_onnx.web import ORT_WEB_VERSION, write_site
from aeq_onnx.web.serve import make_server
from aeq_onnx.web.site import WEBGPU_FILES
from tests.helpers_models import small_cnn

pytestmark = pytest.mark.skipif(not ORT_WEB.is_file(), reason="onnxruntime-web is not installed "
                                "in web/node_modules (make npm installs it)")
#: URLs the onnxruntime-web bundles carry in messages (documentation), never loaded.
DOC_URLS = {"https://web.dev/cross-origin-isolation-guide/"}
OWN_FILES = ("index.html", "app.js", "aeq-core.js", "style.css", "config.js")


def _config(site: Path) -> dict:
    text = (site / "config.js").read_text(encoding="utf-8")
    return json.loads(text.removeprefix("window.AEQ_CONFIG = ").rstrip().rstrip(";"))


def _meta(path: Path) -> dict[str, str]:
    model = onnx.load(path)
    return {p.key[len("aeq_onnx."):]: p.value for p in model.metadata_props}


@pytest.fixture(scope="module")
def explainer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_imagenet_explainer(tmp_path_factory.mktemp("site") / "tiny.explainer.onnx")


def test_site_files_config_and_explainer_copy(explainer: Path, tmp_path: Path) -> None:
    site = write_site(explainer, tmp_path / "site")
    names = {p.relative_to(site.root).as_posix() for p in site.root.rglob("*")}
    assert {*OWN_FILES, "explainer.onnx", "ort/ort.wasm.min.js", "ort/NOTICE.txt",
            *(f"ort/{f}" for f in WEBGPU_FILES)} <= names
    config = _config(site.root)
    assert config["model"] == "explainer.onnx" and config["name"] == explainer.name
    assert config["ortVersion"] == ORT_WEB_VERSION and config["webgpu"] is True
    assert len(config["labels"]) == 1000 and config["labels"][281] == "tabby"
    assert config["modelBytes"] == (site.root / "explainer.onnx").stat().st_size
    # the preset was stored already: the explainer is copied byte for byte
    assert (site.root / "explainer.onnx").read_bytes() == explainer.read_bytes()
    assert (site.preset, site.layout, site.classes) == (get_preset("imagenet"), "NCHW", 1000)


def test_example_photos_are_copied_with_safe_names(explainer: Path, tmp_path: Path) -> None:
    photo = Path(__file__).resolve().parents[2] / "fixtures" / "images" / "chelsea.jpg"
    odd = tmp_path / "my cat (1).JPG"
    odd.write_bytes(photo.read_bytes())
    site = write_site(explainer, tmp_path / "site", examples=[photo, odd, photo])
    assert _config(site.root)["examples"] == ["examples/chelsea.jpg", "examples/my-cat-1.jpg",
                                              "examples/chelsea-2.jpg"]
    assert (site.root / "examples" / "my-cat-1.jpg").read_bytes() == photo.read_bytes()
    with pytest.raises(InputError, match="no such example photo"):
        write_site(explainer, tmp_path / "again", examples=[tmp_path / "missing.jpg"])


def test_preset_override_labels_and_no_webgpu(explainer: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"thing </script> {k}" for k in range(1000)), encoding="utf-8")
    before = explainer.read_bytes()
    site = write_site(explainer, tmp_path / "site", preset="inception", labels=labels,
                      webgpu=False)
    assert explainer.read_bytes() == before  # the user's file is left alone
    stored = preset_from_metadata(_meta(site.root / "explainer.onnx"))
    assert stored == get_preset("inception")
    assert _config(site.root)["labels"][3] == "thing </script> 3"
    assert "</script>" not in (site.root / "config.js").read_text(encoding="utf-8")
    assert not any((site.root / "ort" / f).exists() for f in WEBGPU_FILES)
    labels.write_text("only\ntwo\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"2 labels in .*the model has 1000 classes"):
        write_site(explainer, tmp_path / "again", labels=labels)


def test_a_classifier_is_compiled_and_gets_the_default_preset(tmp_path: Path) -> None:
    onnx.save(tiny_imagenet(), tmp_path / "classifier.onnx")
    site = write_site(tmp_path / "classifier.onnx", tmp_path / "site")
    copy = onnx.load(site.root / "explainer.onnx")
    assert is_explainer(copy)
    assert preset_from_metadata(_meta(site.root / "explainer.onnx")) == get_preset("imagenet")


def test_clear_errors(explainer: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="too large for the browser"):
        write_site(explainer, tmp_path / "a", max_bytes=1000)
    with pytest.raises(InputError, match="does not match the model's input"):
        write_site(explainer, tmp_path / "b", preset=get_preset("imagenet", size=224))
    fake = tmp_path / "node_modules" / "onnxruntime-web"
    (fake / "dist").mkdir(parents=True)
    (fake / "package.json").write_text('{"version": "1.29.0"}', encoding="utf-8")
    with pytest.raises(InputError, match=f"needs exactly {ORT_WEB_VERSION}"):
        write_site(explainer, tmp_path / "c", ort_dir=fake)
    with pytest.raises(InputError, match="make web"):
        write_site(explainer, tmp_path / "d", ort_dir=tmp_path / "nowhere")
    # an explainer without a stored preset takes the one given (its 8x8 input fixes the size)
    small = aeq_onnx.compile_explainer(small_cnn())
    onnx.save(small, tmp_path / "small.onnx")
    assert write_site(tmp_path / "small.onnx", tmp_path / "e", preset="unit").classes == 4


def test_cli_writes_the_site_and_reports_errors(explainer: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["web", str(explainer), "-o", str(tmp_path / "site"), "--no-webgpu"]) == 0
    out = capsys.readouterr().out
    assert "preset imagenet, NCHW, 1000 classes" in out and "aeq_onnx.web.serve" in out
    assert main(["web", str(explainer), "-o", str(tmp_path / "x"), "--max-mb", "0.001"]) == 1
    assert "too large for the browser" in capsys.readouterr().err


def test_site_references_nothing_outside_itself(explainer: Path, tmp_path: Path) -> None:
    """No URL with a scheme or host in the page's own files, every src/href a file of the
    site, a Content-Security-Policy that only allows the site's origin, and in the runtime
    only documentation URLs inside messages."""
    root = write_site(explainer, tmp_path / "site").root
    url = re.compile(r"(?:https?|wss?|ftp):|//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
    for name in OWN_FILES:
        text = (root / name).read_text(encoding="utf-8")
        found = [m.group(0) for m in url.finditer(text)]
        assert not found, f"{name} references {found}"
    html = (root / "index.html").read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith("data:") or (root / ref).is_file(), ref
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None and "default-src 'self'" in policy.group(1)
    assert "http" not in policy.group(1) and "*" not in policy.group(1)
    app = (root / "app.js").read_text(encoding="utf-8")
    for ref in re.findall(r"'(ort/[^']+)'", app):
        assert (root / ref).is_file(), ref
    for path in (root / "ort").glob("*.*js"):
        urls = set(re.findall(r"(?:https?|wss?)://[^\s\"'`)]+", path.read_text("utf-8")))
        assert urls <= DOC_URLS, f"{path.name}: {urls - DOC_URLS}"


@pytest.mark.parametrize("isolate", [True, False])
def test_server_headers(explainer: Path, tmp_path: Path, isolate: bool) -> None:
    root = write_site(explainer, tmp_path / "site", webgpu=False).root
    server = make_server(root, 0, isolate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no http_proxy
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with direct.open(base + "ort/ort-wasm-simd-threaded.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
            coop = response.headers.get("Cross-Origin-Opener-Policy")
            coep = response.headers.get("Cross-Origin-Embedder-Policy")
        assert (coop, coep) == (("same-origin", "require-corp") if isolate else (None, None))
        with direct.open(base + "ort/ort-wasm-simd-threaded.mjs") as response:
            assert response.headers["Content-Type"] == "text/javascript"
    finally:
        server.shutdown()
        server.server_close()
