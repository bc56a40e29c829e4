# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-ops test-unit test-integration test-e2e test-faults bench rebuild-read-model lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## Start NATS, PostgreSQL and the four services; gateway on http://127.0.0.1:8000
	$(PY) -m tools.run

test: $(STAMP)  ## Unit, integration and end-to-end tests against real nats-server and PostgreSQL
	$(PY) -m pytest

OPS_STAMP := $(VENV)/.installed-ops

$(OPS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,ops]'
	touch $(OPS_STAMP)

test-ops: $(OPS_STAMP)  ## Browser (Chromium) and Prometheus tests; needs Debian's chromium and prometheus packages
	$(PY) -m pytest tests/ops

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

test-e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

test-faults: $(STAMP)  ## Every fault scenario at full size: kill -9 of services and nats-server, a cluster node, PostgreSQL stopped
	$(PY) -m pytest tests/faults --faults=full

bench: $(STAMP)  ## Drive orders against a running stack (default: the running `make run`; see README.md)
	$(PY) -m bench $(ARGS)

# As the projector's NATS user and database role of the running `make run` (or NATS_URL).
rebuild-read-model: $(STAMP)  ## Rebuild the PostgreSQL read model from the event log
	$(PY) -m tools.local exec projector -- $(PY) -m services.projector rebuild

clean:
	rm -rf .run .pytest_cache .hypothesis
