# The front door: README and .ci/run use these targets and nothing else.
# The distribution's CPython 3.11+ where there is one, else python3 from PATH. Distributions build it
# with profile-guided optimisation and LTO, as python:3.11-slim (the Docker image) is; pyenv's default
# build is not, and runs the relay about 30% slower (bench/RESULTS.md), which `make bench` would then
# report as the relay's speed. Override with `make install PYTHON=...` (after `make clean`).
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.1[1-9]) python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test unit lint bench audit clean python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python  ## create .venv and install the relay with its dev tools
	$(BIN)/pip install --quiet -e '.[dev]'

run: install  ## edge + one worker (+ a Redis of its own if none answers); Ctrl-C stops all; flags: ARGS="--help"
	$(BIN)/python -m relay.cli.devrun $(ARGS)

lint: install  ## ruff, mypy and the import contracts between layers (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check relay worker tests bench examples
	$(BIN)/ruff format --check relay worker tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install  ## the tests alone
	$(BIN)/pytest

test: lint unit  ## lint, then every test against real redis-servers the tests start themselves

bench: install  ## measure the edge and the pipeline against baselines (writes bench/RESULTS.md; needs wrk)
	$(BIN)/python -m bench

audit: install  ## known vulnerabilities in every installed dependency (pip-audit; needs the network, so not in CI)
	$(BIN)/pip install --quiet pip-audit
	@# --strict: a package that could not be looked up fails the audit; without it, a machine that
	@# cannot reach the vulnerability database would report "No known vulnerabilities found".
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

python:  ## print the interpreter `make install` builds the virtualenv with
	@echo $(PYTHON)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
