# aeq_onnx: `make demo` runs the bundled demo, `make test` runs lint, types and tests.
# Both create .venv and install everything they need from scratch.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-dev
PYTHON  ?= python3

.PHONY: install demo audit-demo test lint typecheck pytest bench bench-web clean browser npm web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,keras,ray]'
	touch $(STAMP)

install: $(STAMP)

DEMO_STAMP := $(VENV)/.installed-demo

$(DEMO_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,demo]'
	touch $(DEMO_STAMP)

# npm packages, pinned by their lockfiles: onnxruntime-web for `aeq web` (web/) and
# onnxruntime-node + sharp for examples/node. --ignore-scripts: onnxruntime-node's install script
# would download CUDA binaries; its CPU binary ships in the package.
WEB_STAMP  := web/node_modules/.installed
NODE_STAMP := examples/node/node_modules/.installed
NPM_CI     := npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is needed for aeq web and its tests"; exit 1; }
	cd web && $(NPM_CI)
	touch $@

$(NODE_STAMP): examples/node/package.json examples/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is needed for examples/node and its tests"; exit 1; }
	cd examples/node && $(NPM_CI)
	touch $@

web: $(WEB_STAMP)

npm: $(WEB_STAMP) $(NODE_STAMP)

# EfficientNet-Lite0 (real ImageNet weights) -> explainer -> out/demo/index.html and out/demo/web/
demo: $(DEMO_STAMP) $(WEB_STAMP)
	$(PY) -m fixtures.demo

# every method x insertion/deletion on EfficientNet-Lite0 and the bundled photos -> out/audit-demo
audit-demo: $(DEMO_STAMP)
	$(PY) -m fixtures.audit_demo

lint: $(STAMP)
	$(VENV)/bin/ruff check aeq_onnx tests fixtures benchmarks scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

# The gallery test drives a real browser: install Debian's chromium when it is missing.
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the gallery browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null || echo "warning: could not install chromium; the browser test will skip"; }

test: lint typecheck browser npm pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_explainer.py

# Lite0 explainer per image: Chromium WASM 1 thread / multi-thread, Node, Python -> benchmarks/results/WEB.md
bench-web: $(DEMO_STAMP) npm browser
	$(PY) benchmarks/bench_web.py

clean:
	rm -rf $(VENV) fixtures/.cache out .pytest_cache .mypy_cache .ruff_cache \
	  web/node_modules examples/node/node_modules
