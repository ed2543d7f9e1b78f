# The README's commands. Each installs what it needs into .venv first (Python 3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: local test lint bench install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# The local run needs only the package and its `local` extra (moto's server, a YAML reader), not the test tools.
$(BIN)/.installed-local: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local]'
	touch $@

## The main job on one machine: moto's AWS server + the Aspose emulator (or the real API) + the handler.
## Installs .venv/bin/ocr-poller; `make local ARGS="--serve --env-file local.env"` keeps the stack up.
local: $(BIN)/.installed-local
	$(BIN)/ocr-poller local $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tools tests benchmarks
	$(BIN)/ruff format --check src tools tests benchmarks
	$(BIN)/mypy

## Everything: lint, types, unit + integration tests (moto server, emulator, SDK), cfn-lint, sam validate.
test: lint
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run $(ARGS)
