PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast ui server ray-check ui-check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python experiments/train.py
	@echo "Open the MLflow UI with: make ui   (then browse http://127.0.0.1:5000)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The MLflow UI over the local store (mlruns/mlflow.db, artifacts mlruns/artifacts) on
# 127.0.0.1:5000, one worker, no job execution; a port in use is one line and a failure.
ui: $(STAMP)
	@$(BIN)/python experiments/server.py --ui --host 127.0.0.1 --port 5000 --store $(CURDIR)/mlruns

# A shared tracking server on 127.0.0.1:5001 (make ui keeps 5000 for the local store):
# SQLite store mlruns/server.db, artifacts served from mlruns/server-artifacts.
server: $(STAMP)
	@$(BIN)/python experiments/server.py --host 127.0.0.1 --port 5001 --store $(CURDIR)/mlruns

# The Ray launcher in its own venv (.venv/ray; the extra pins cloudpickle<3), one small sweep.
ray-check:
	PY=$(PY) bash .ci/ray_check

# What a user sees in the MLflow UI: a temporary store filled by real commands, `mlflow ui` over
# it, screenshots in headless Chromium (Debian's package; the `ui` extra brings Playwright) into
# ui-check/ with an index pages.md. SKIPPED when Chromium cannot be installed or started.
#   make ui-check UI_CHECK_ARGS=--quick UI_CHECK_OUT=/tmp/shots
UI_CHECK_OUT ?= ui-check
ui-check: $(STAMP)
	OUT="$(UI_CHECK_OUT)" UI_CHECK_ARGS="$(UI_CHECK_ARGS)" bash .ci/ui_check

# Speed against scikit-learn and PyTorch (tables in benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
