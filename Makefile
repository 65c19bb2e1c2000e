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

# Figures, not assertions: runplan side by side with a kubectl script, Ansible
# (kubernetes.core) and the cluster's own limit on a fresh local control plane of its
# own (bench/.localcluster, audit log on); compile scaling, wait latency, fan-out and
# API requests too. Writes docs/benchmarks.md; fails only if a contender failed to run.
# Ansible lives in a venv of its own, outside the repo.
BENCH_VENV ?= $(HOME)/.cache/runplan/bench-venv
BENCH_ARGS ?= --e2e-runs 5 --latency-runs 20 --fanout-runs 5

$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet 'ansible==12.3.0' 'kubernetes==37.0.2'
	touch $@

.PHONY: bench
bench: localcluster-build $(BENCH_VENV)/.installed
	@# Start-up is measured as installed from a wheel, whose install compiles bytecode:
	@# the editable install would otherwise compile runner/ on every start when
	@# PYTHONDONTWRITEBYTECODE is set.
	$(PY) -m compileall -q runner
	RUNPLAN_BENCH_VENV=$(BENCH_VENV) $(PY) -m bench.run $(BENCH_ARGS)

cluster-up: $(VENV)/.installed
	$(PY) -m localcluster up --state-dir $(STATE_DIR)

cluster-down: $(VENV)/.installed
	$(PY) -m localcluster down --state-dir $(STATE_DIR)
