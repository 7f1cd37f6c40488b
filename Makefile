# One entry point for people and CI. Every target sets up what it needs (venv, pinned packages,
# DynamoDB Local from npm) so a bare clone works with `make run` or `make test` alone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
AWS_REGION ?= us-east-1
export AWS_REGION
export SAM_CLI_TELEMETRY := 0
DDB_JAR := local/dynamodb/node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar
# sam build for the python3.12 runtime needs a python3.12 on PATH (pyenv's, where the machine has it).
PY312 := $(shell PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null || command -v python3.12 2>/dev/null)

.PHONY: setup run test lint typecheck template build unit integration e2e browser bench clean

setup: $(VENV)/.installed $(DDB_JAR)

# Everything for testing and building (`make test`): the `dev` extra, which holds the `run` one.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@ $(VENV)/.installed-run

# Only what running needs (`make run`): the runtime packages and the local stack's own (`run` extra).
$(VENV)/.installed-run: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[run]"
	touch $@

$(DDB_JAR): local/dynamodb/package.json local/dynamodb/package-lock.json
	cd local/dynamodb && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	test -f $@ && touch $@

# The browser test drives Debian's Chromium (never a downloaded browser build) through playwright.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: $(CHROMIUM)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the browser test needs Debian's chromium at $@"; exit 1; }
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

run: $(VENV)/.installed-run $(DDB_JAR)
	$(BIN)/python -m b24run --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy layers/b24core/b24core
	$(BIN)/mypy local/b24sim local/b24stack local/b24run cli/b24cli
	for d in functions/*/; do $(BIN)/mypy "$$d" || exit 1; done

template: setup
	$(BIN)/sam validate --region $(AWS_REGION)
	$(BIN)/sam validate --lint --region $(AWS_REGION)
	$(BIN)/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml
	$(BIN)/python tools/b24_names.py check apps/*/b24app.manifest.json

build: setup
	@test -n "$(PY312)" || { echo "sam build needs python3.12 on PATH"; exit 1; }
	PATH="$(dir $(PY312)):$$PATH" $(BIN)/sam build --region $(AWS_REGION)

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

e2e: setup
	$(BIN)/pytest tests/e2e

test: setup browser lint typecheck template build
	$(BIN)/pytest

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf .aws-sam .local .pytest_cache .mypy_cache .ruff_cache
