# The README's commands. Everything installs into .venv through constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
PACKAGES := -e shared -e 'services/gateway[engine]' -e services/datagen -e services/trainer -e services/quantizer -e services/evaluator -e tools/teacher -e cli
# deepspeed (services/trainer) installs from source: build no C++ ops now, they JIT-compile on first use.
export DS_BUILD_OPS := 0

.PHONY: install install-test chromium demo up test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(PIP) $(PACKAGES)

# openapi-python-client (tests/integration/test_generated_client.py) declares typer<0.28 while the
# project pins 0.29; its generator runs with 0.29 (that test proves it), so it installs without its
# declared dependencies, the ones it needs being in requirements-test.txt.
install-test: install
	$(PIP) -r requirements-test.txt
	$(PIP) --no-deps openapi-python-client

# The offline demo on the embedded default (no servers needed).
demo: install
	$(BIN)/belle demo

# Start the embedded stack (gateway + workers) and keep it running.
up: install
	$(BIN)/belle up

# The browser tests (tests/integration/test_web_pages.py) drive Debian's chromium, never a browser a
# test tool downloads: installed here when missing (as root, or through sudo); apt lists fetched only
# when the package cannot be found without them.
chromium:
	@test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -qq --no-install-recommends chromium \
	  || { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }; }

# The test suite. Integration tests use the local PostgreSQL and Redis (see .ci/run to start them).
# Two pytest processes (pytest-xdist), each test file whole in one of them: most tests wait on worker
# processes, servers and model loads, so one process keeps less than one of two cores busy (docs/testing.md).
# `make test PYTEST_ARGS="..."` replaces these options: a subset runs in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile
test: install-test chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .belle .pytest_cache
