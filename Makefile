# Two entry points: `make demo` and `make test`. Each builds or refreshes .venv from pyproject.toml.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: demo demo-s3 serve test test-slow lint typecheck layers bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Report and UI tests open pages in Debian's headless Chromium, driven by Playwright (the dev
# extra), which uses this Chromium and downloads none (no `playwright install`); install it when absent.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install chromium' (Debian's package)"; exit 1; \
	  fi; }

demo: $(STAMP)
	$(BIN)/sluice demo

# The demo with Delta outputs on a local S3-compatible server (moto on 127.0.0.1): docs/storage.md
demo-s3: $(STAMP)
	$(BIN)/python scripts/demo_s3.py

serve: $(STAMP)
	$(BIN)/sluice serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The import contracts in pyproject.toml: no layer imports one above it (docs/design.md).
layers: $(STAMP)
	$(BIN)/lint-imports

# Tests run on TEST_WORKERS processes (pytest-xdist); tests sharing a costly session fixture are
# kept on one worker by an xdist_group mark. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 3
test: $(STAMP) browser lint typecheck layers
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python -m bench.validate
	$(BIN)/python -m bench.detect

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
