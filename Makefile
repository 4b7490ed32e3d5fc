# medpredict: `make demo` runs the bundled studies; `make test` runs the test suite.
# Both create .venv and install the pinned dependencies first (torch 2.13.0, CPU build).
# `make test` also fetches (checksummed) any reference data not found locally.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MEDPREDICT_CACHE_DIR ?= $(abspath .cache)
export HF_HUB_OFFLINE := 1

.PHONY: setup demo timeline-demo forecast-demo survival-demo effects-demo test lint bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/medpredict demo --output-dir runs

timeline-demo: setup
	$(BIN)/medpredict run medpredict/examples/physionet2012.yaml --output-dir runs

forecast-demo: setup
	$(BIN)/medpredict forecast medpredict/examples/flusight.yaml --output-dir runs

survival-demo: setup
	$(BIN)/medpredict run medpredict/examples/rotterdam_survival.yaml --output-dir runs

effects-demo: setup
	$(BIN)/medpredict run medpredict/examples/actg320_effects.yaml --output-dir runs

test: setup
	bash .ci/install-browser.sh
	$(BIN)/medpredict datasets fetch --all
	$(BIN)/ruff check medpredict tests benchmarks
	$(BIN)/pytest -n 2 --dist loadfile -q

lint: setup
	$(BIN)/ruff check medpredict tests benchmarks

bench: setup
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .cache .pytest_cache
