"""Drive an ``aeq web`` site in headless Chromium and read results back from the page.

The site is served on 127.0.0.1 by :mod:`aeq_onnx.web.serve` (with or without the COOP/COEP
headers). A copy of its index.html, ``probe.html``, also loads ``probe.js``: the test's script,
which uses the page's own ``window.aeq`` (the state behind what the page shows) and its DOM, then
POSTs a JSON report to ``/__report`` on the same server. The test waits for that report (an
event, with a generous timeout), so no timing decides the outcome. Chromium runs with its own
profile folder and with every host name but 127.0.0.1 unresolvable.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.web.serve import SiteHandler, make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--remote-debugging-port=0"]
#: WebGPU without a GPU: Chromium's SwiftShader adapter (Vulkan on the CPU).
WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader",
                "--enable-unsafe-swiftshader"]

#: Helpers every probe gets: send(report), b64(typed array), canvasPixels(canvas), and the
#: list of Content-Security-Policy violations and page errors seen so far.
PRELUDE = """
const seen = { violations: [], errors: [] };
document.addEventListener('securitypolicyviolation',
  (e) => seen.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
window.addEventListener('error', (e) => seen.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => seen.errors.push(String(e.reason)));
function b64(array) {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
function canvasPixels(canvas) {
  return b64(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data);
}
function resources() {
  return performance.getEntriesByType('resource').map((r) => r.name);
}
async function send(report) {
  report.seen = seen;
  report.resources = resources();
  await fetch('/__report', { method: 'POST', body: JSON.stringify(report) });
}
async function probe(body) {
  try { await send(await body()); } catch (e) { await send({ error: String(e && e.stack || e) }); }
}
"""


class _ReportHandler(SiteHandler):
    """The site's handler plus POST /__report, which hands the body to the waiting test."""

    def do_POST(self) -> None:
        """Store the report and wake the test."""
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.send_response(204)
        self.end_headers()
        if self.path == "/__report":
            self.server.reports.append(json.loads(body))  # type: ignore[attr-defined]
            self.server.arrived.set()  # type: ignore[attr-defined]


def run_probe(site: Path, probe_js: str, *, isolate: bool, query: str = "",
              timeout: float = 300.0, webgpu: bool = False) -> dict[str, Any]:
    """Open ``site`` in headless Chromium with ``probe_js`` (an async function body that
    returns the report) and return the report it sends; ``webgpu``: with SwiftShader's WebGPU
    adapter (else the GPU is off and the page finds no adapter)."""
    assert CHROMIUM is not None
    html = (site / "index.html").read_text(encoding="utf-8")
    (site / "probe.html").write_text(html.replace(
        "</head>", '<script src="probe.js" defer></script>\n</head>'), encoding="utf-8")
    (site / "probe.js").write_text(PRELUDE + f"probe(async () => {{\n{probe_js}\n}});\n",
                                   encoding="utf-8")
    server = make_server(site, 0, isolate, handler=_ReportHandler)
    server.reports = []  # type: ignore[attr-defined]
    server.arrived = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    profile = tempfile.mkdtemp(prefix="aeq-chromium-")
    flags = [f for f in FLAGS if f != "--disable-gpu"] + WEBGPU_FLAGS if webgpu else FLAGS
    browser = subprocess.Popen(
        [CHROMIUM, *flags, f"--user-data-dir={profile}",
         f"http://127.0.0.1:{port}/probe.html{query}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        arrived = server.arrived.wait(timeout)  # type: ignore[attr-defined]
        if not arrived:
            browser.kill()
            _, err = browser.communicate(timeout=30)
            raise AssertionError(f"no report from the page within {timeout} s; chromium said: "
                                 f"{err.decode(errors='replace')[-2000:]}")
        return server.reports[0]  # type: ignore[attr-defined]
    finally:
        if browser.poll() is None:
            browser.terminate()
            try:
                browser.wait(timeout=30)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait(timeout=30)
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)


def floats(text: str) -> np.ndarray:
    """A base64 float32 array from the page."""
    return np.frombuffer(base64.b64decode(text), np.float32)


def pixels(text: str, height: int, width: int) -> np.ndarray:
    """Canvas RGBA bytes from the page as RGB ``[H, W, 3]``."""
    rgba = np.frombuffer(base64.b64decode(text), np.uint8).reshape(height, width, 4)
    return rgba[:, :, :3]
