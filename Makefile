# Quick start: `make demo` (a real plan against the local control plane) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .localcluster

.PHONY: venv localcluster-build test unit demo lint cluster-up cluster-down

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# Build the control plane binaries first, with visible progress (minutes when cold).
localcluster-build: $(VENV)/.installed
	$(PY) -m localcluster build

# pytest's exit code 5 means it collected nothing: a broken setup, never a pass.
test: localcluster-build
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the test setup is broken" >&2; exit 1; fi; \
	exit $$rc

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed
	$(PY) -m ruff check runner localcluster tests bench
	$(PY) -m mypy

# A real StatefulSet partition canary (pods 2,3,4 first, then 1, then 0) against
# the local control plane, which stays up afterwards for kubectl (make cluster-down).
demo: localcluster-build
	@eval "$$($(PY) -m localcluster up --state-dir $(STATE_DIR))" && \
	$(VENV)/bin/runplan playbooks/statefulset-partition-canary.yaml && \
	echo "the local cluster is still up: export KUBECONFIG=$(abspath $(STATE_DIR))/kubeconfig; make cluster-down stops it"

# Figures, not assertions: compile scaling and wait reaction latency / API requests.
bench: localcluster-build
	$(PY) bench/compile_bench.py
	$(PY) bench/wait_latency.py --runs 20

cluster-up: $(VENV)/.installed
	$(PY) -m localcluster up --state-dir $(STATE_DIR)

cluster-down: $(VENV)/.installed
	$(PY) -m localcluster down --state-dir $(STATE_DIR)
