# aeq_onnx: `make demo` runs the bundled demo, `make test` runs lint, types and tests.
# Both create .venv and install everything they need from scratch.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-dev
PYTHON  ?= python3

.PHONY: install demo audit-demo test lint typecheck pytest bench clean browser

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

# EfficientNet-Lite0 (real ImageNet weights) -> explainer -> out/demo/index.html
demo: $(DEMO_STAMP)
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

test: lint typecheck browser pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_explainer.py

clean:
	rm -rf $(VENV) fixtures/.cache out .pytest_cache .mypy_cache .ruff_cache
