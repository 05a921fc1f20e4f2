"""Serve an ``aeq web`` site on this machine: ``python -m aeq_onnx.web.serve SITE [--port N]``.

Any static server works (``python3 -m http.server``); this one also sends the COOP/COEP headers
that make the page cross-origin isolated, so onnxruntime-web runs WebAssembly multi-threaded.
It listens on 127.0.0.1 only and serves files; it runs no code of the page.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin",
                     "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}


class SiteHandler(SimpleHTTPRequestHandler):
    """Static files with the right types for .mjs/.wasm/.onnx, COOP/COEP when ``isolate``."""

    isolate = True
    extensions_map = {  # noqa: RUF012 (http.server's own class attribute, never mutated)
        **SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
        ".mjs": "text/javascript", ".wasm": "application/wasm",
        ".onnx": "application/octet-stream"}

    def end_headers(self) -> None:
        """Add the isolation headers (when asked) and forbid caching of stale sites."""
        if self.isolate:
            for key, value in ISOLATION_HEADERS.items():
                self.send_header(key, value)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""


def make_server(site: str | os.PathLike[str], port: int = 0, isolate: bool = True,
                handler: type[SiteHandler] = SiteHandler) -> ThreadingHTTPServer:
    """A threaded server for ``site`` on 127.0.0.1:``port`` (0: any free port), not started."""
    root = Path(site)
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"'{root}' holds no index.html (write one with aeq web)")
    bound = type("BoundSiteHandler", (handler,), {"isolate": isolate})
    factory = functools.partial(bound, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", port), factory)
    server.daemon_threads = True
    return server


def serve(site: str | os.PathLike[str], port: int = 8000, isolate: bool = True) -> None:
    """Serve ``site`` until interrupted, printing the address to open."""
    server = make_server(site, port, isolate)
    host, bound = str(server.server_address[0]), server.server_address[1]
    threads = "multi-threaded" if isolate else "single-threaded"
    print(f"serving {site} at http://{host}:{bound}/ (WebAssembly {threads}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m aeq_onnx.web.serve SITE [--port N] [--no-isolation]``."""
    parser = argparse.ArgumentParser(prog="python -m aeq_onnx.web.serve", description=__doc__)
    parser.add_argument("site", help="the folder written by aeq web")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-isolation", action="store_true",
                        help="no COOP/COEP headers (WebAssembly single-threaded)")
    args = parser.parse_args(argv)
    try:
        serve(args.site, args.port, not args.no_isolation)
    except (OSError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
