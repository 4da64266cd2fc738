# edgecam: `make demo` runs a node on a sample video; `make test` runs the suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || (command -v sudo >/dev/null && echo sudo -n))
# On a Pi, picamera2 comes from apt: the venv must see system site-packages there.
VENV_FLAGS := $(shell [ -e /usr/lib/python3/dist-packages/picamera2 ] && echo --system-site-packages)

.PHONY: venv install system-deps assets model demo test e2e faults soak bench bench-fleet bench-central-pg lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python

# pip runs again only when the packaging files change: a stamp, not 20 s of pip on every `make demo`.
INSTALLED := $(VENV)/.edgecam-installed

$(INSTALLED): setup.py pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[prepare,central]'
	@touch $@

install: $(INSTALLED)

system-deps:
	@bash scripts/install-system-deps

assets:
	@bash scripts/fetch-assets

model: install assets
	$(BIN)/edgecam model prepare --out models

demo: system-deps install assets
	@[ -f models/manifest.json ] || $(BIN)/edgecam model prepare --out models
	DEMO_LIVE=$(DEMO_LIVE) $(BIN)/python scripts/demo.py

test: system-deps venv
	$(BIN)/pip install -q -e '.[prepare,central,plates,test]'
	@bash scripts/fetch-assets --quiet || echo "make test: some assets could not be fetched; the tests that need them skip"
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

e2e: system-deps venv
	$(BIN)/pip install -q -e '.[prepare,central,test]'
	$(BIN)/python -m pytest -q -m e2e $(PYTEST_ARGS)

# issue #14's fault scenarios end to end (real mosquitto, PostgreSQL if reachable, tmpfs as root); not in `make test`
faults: system-deps venv
	$(BIN)/pip install -q -e '.[prepare,central,test]'
	@bash scripts/fetch-assets --quiet
	$(BIN)/python -m pytest -q -m fault tests/test_faults.py $(PYTEST_ARGS)

soak: system-deps venv
	$(BIN)/pip install -q -e '.[prepare,central,test,bench]'
	$(BIN)/python -m pytest -q -m slow tests/test_soak.py $(PYTEST_ARGS)

bench: install assets
	$(BIN)/python benchmarks/run_all.py

# Fleet (#18.3): 1,000 simulated nodes x 10 min into 1, 2 and 4 shared consumers on PostgreSQL (PG_URL).
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
bench-fleet: install
	PYTHONPATH=. nice -n 10 $(BIN)/python benchmarks/fleet.py --nodes 1000 --seconds 600 --consumers 1,2,4 \
		--server $(PG_URL) --write benchmarks/fleet.md

# Central on PostgreSQL with 10 million events (#18.4): load, search, status.
bench-central-pg: install
	PYTHONPATH=. nice -n 10 $(BIN)/python benchmarks/central_pg.py --events 10000000 --server $(PG_URL) \
		--write benchmarks/central_pg.md

# ruff, the import contracts (who may import whom, docs/architecture.md) and mypy on edge/ at zero errors.
lint: venv
	$(BIN)/pip install -q -e '.[lint]'
	$(BIN)/ruff check edge tests scripts benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
