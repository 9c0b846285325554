# The front door: README and .ci/run use these targets and nothing else.
# The distribution's CPython 3.11+ where there is one, else python3 from PATH. Distributions build it
# with profile-guided optimisation and LTO, as python:3.11-slim (the Docker image) is; pyenv's default
# build is not, and runs the relay about 30% slower (bench/RESULTS.md), which `make bench` would then
# report as the relay's speed. Override with `make install PYTHON=...` (after `make clean`).
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.1[1-9]) python3)
VENV ?= .venv
BIN := $(VENV)/bin

LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt
# The lock (docs/deploy.md, "Dependencies"): uv compiles pinned, hashed requirements files that plain
# pip installs with --require-hashes, so the image and CI need no uv. `make lock` keeps every pin that
# still fits pyproject.toml (re-run it after a merge); `make lock LOCK_FLAGS=--upgrade` takes the newest.
LOCK_FLAGS ?=
COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_FLAGS)
PIP = $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: install lock run test unit lint bench soak audit test-lowest compose-test clean python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs only when pyproject.toml or the lock changed since the last install (the stamp's time).
$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) install --require-hashes --no-deps -r $(LOCK)
	@# setuptools warns on every editable install that a folder named like the package may shadow it:
	@# that folder IS the package here, so the banner says nothing to act on.
	PYTHONWARNINGS=ignore $(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

install: $(VENV)/.installed  ## create .venv and install the locked dev tools, then the relay (editable)

lock:  ## recompile requirements/*.txt from pyproject.toml (keeps the pins that still fit)
	@test -x $(BIN)/uv || $(PIP) install uv
	$(COMPILE) --extra dev pyproject.toml requirements/build.in -o $(LOCK)
	$(COMPILE) pyproject.toml requirements/build.in -c $(LOCK) -o $(RUNTIME_LOCK)

run: install  ## edge + one worker + a Redis of its own (data in .relay-dev/; RELAY_REDIS_URL: use that one instead); Ctrl-C stops all; flags: ARGS="--help"
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

soak: install  ## a long run, worker restarted every minute: every event handled, Redis memory bounded (not in CI; ARGS="--minutes 15")
	$(BIN)/python -m bench.soak $(ARGS)

audit: install  ## known vulnerabilities in every locked package (pip-audit; needs the network, so not in CI)
	@# --strict: a package that could not be looked up fails the audit; without it, a machine that
	@# cannot reach the vulnerability database would report "No known vulnerabilities found".
	$(BIN)/uv tool run --quiet pip-audit --strict --progress-spinner off --require-hashes --disable-pip -r $(LOCK)

# The lowest versions pyproject.toml allows, and the tests that cover the edge, the worker and the
# relay command end to end on them: each floor there must be a version these pass on.
LOWEST := .venv-lowest
LOWEST_TESTS := tests/core tests/edge tests/worker/test_end_to_end.py tests/worker/test_main.py \
	tests/worker/test_connection.py tests/worker/test_claim.py tests/worker/test_processes.py \
	tests/cli/test_cli_process.py tests/cli/test_cli_send.py tests/cli/test_devrun.py \
	tests/security/test_slow_clients.py

test-lowest: install  ## the edge, worker and CLI tests on the lowest versions pyproject.toml allows (.venv-lowest)
	@mkdir -p $(LOWEST)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --resolution lowest-direct --no-header \
		--extra dev pyproject.toml requirements/build.in -o $(LOWEST)/requirements.txt
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(BIN)/uv pip sync --quiet --python $(LOWEST)/bin/python $(LOWEST)/requirements.txt
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python --no-deps --no-build-isolation -e .
	@$(LOWEST)/bin/python -c 'from importlib.metadata import version as v; print("lowest:", *(f"{p} {v(p)}" for p in ("uvicorn", "redis", "arq", "fastapi", "starlette", "pydantic", "httpx", "click")))'
	$(LOWEST)/bin/pytest -q -p no:cacheprovider $(LOWEST_TESTS)

compose-test: install  ## both compose stacks for real, under project names and settings of their own (never .env's): signed events, a worker killed, Redis restarted, the HA stack beside the plain one, a move between them, the edge replaced under votes
	@docker info >/dev/null 2>&1 || { echo "compose-test: no Docker daemon answers; start one (dockerd &) or install docker.io. Nothing was started." >&2; exit 1; }
	COMPOSE_TEST=1 $(BIN)/pytest tests/stack -q -p no:cacheprovider

python:  ## print the interpreter `make install` builds the virtualenv with
	@echo $(PYTHON)

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
