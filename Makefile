# The README's commands. Each installs what it needs into .venv first (Python 3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The one uv the project uses: the version uv.lock pins (uv is a test dependency too).
UV_VERSION := $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)
# The function's requirements, as `sam build` installs them into the artifact.
REQUIREMENTS ?= src/requirements.txt
# Where `make build` puts the artifact (sam's default; `sam deploy` finds it there).
BUILD_DIR ?= .aws-sam/build
# Python 3.13, the function's runtime, which `sam build` needs on PATH: PATH's python3.13, else pyenv's
# (a pyenv shim that answers "command not found" does not count).
PYTHON313 ?= $(shell for p in "$$(command -v python3.13)" $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	[ -x "$$p" ] && "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null \
	&& { echo "$$p"; break; }; done)

.PHONY: local test lint bench install lock requirements build python313

# The venv holds exactly what uv.lock pins (pip, constrained by the lock's export).
$(BIN)/.installed: pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv export --quiet --frozen --all-extras --no-emit-project --no-hashes -o $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/.installed

# The local run needs only the package and its `local` extra (moto's server, a YAML reader), not the test
# tools; at the versions uv.lock pins too.
$(BIN)/.installed-local: pyproject.toml uv.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv export --quiet --frozen --extra local --no-emit-project --no-hashes -o $(VENV)/constraints-local.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints-local.txt -e '.[local]'
	touch $@

## After changing the dependencies in pyproject.toml: re-lock, then regenerate src/requirements.txt.
lock: $(BIN)/.installed
	$(BIN)/uv lock
	$(MAKE) --no-print-directory requirements

## src/requirements.txt from uv.lock: the function's dependencies, one exact pin a line (the hashes stay in
## uv.lock, which the lock test checks), without the AWS SDK
## (boto3, botocore, s3transfer and what only they need), which the Lambda runtime provides.
requirements: $(BIN)/.installed
	{ echo "# Generated from uv.lock by \`make requirements\`; do not edit. What \`sam build\` installs beside"; \
	  echo "# ocr_poller: exact pins. boto3 (+ botocore, s3transfer) is the Lambda runtime's (README)."; \
	  $(BIN)/uv export --quiet --frozen --no-dev --no-emit-project --prune boto3 --no-header --no-annotate --no-hashes; \
	} > $(REQUIREMENTS).tmp
	mv $(REQUIREMENTS).tmp $(REQUIREMENTS)

## The path of Python 3.13, or a clear error.
python313:
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "Python 3.13 (the function's runtime) is neither on PATH (python3.13) nor in ~/.pyenv/versions/3.13*:" \
	    "install it (e.g. 'pyenv install 3.13'), or build in a container: $(BIN)/sam build --use-container" >&2; \
	  exit 1; fi
	@echo "$(PYTHON313)"

## The deployment artifact: `sam build` with Python 3.13 on PATH, into $(BUILD_DIR); then its bytecode.
## sam ships sources only, and Lambda's code folder is read-only, so every cold start would compile them
## again; hash-based .pyc files (no timestamps, which zips round) are used as they are.
build: $(BIN)/.installed
	@$(MAKE) --no-print-directory -s python313 >/dev/null
	PATH="$(dir $(PYTHON313)):$$PATH" $(BIN)/sam build --build-dir $(BUILD_DIR) $(SAM_BUILD_ARGS)
	$(PYTHON313) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILD_DIR)/PollerFunction

## The main job on one machine: moto's AWS server + the Aspose emulator (or the real API) + the handler.
## Installs .venv/bin/ocr-poller; `make local ARGS="--serve --env-file local.env"` keeps the stack up.
local: $(BIN)/.installed-local
	$(BIN)/ocr-poller local $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tools tests benchmarks
	$(BIN)/ruff format --check src tools tests benchmarks
	$(BIN)/mypy

## Everything: lint, types, unit + integration tests (moto server, emulator, SDK), cfn-lint, sam validate,
## and the built artifact (sam build, then imported and run by Python 3.13 beside an older boto3).
test: lint
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.run $(ARGS)
