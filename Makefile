# tier0 — `make help` lists every target. The Makefile installs what it needs: tools into .tools/,
# Python packages into .venv/, local state into .run/ (all three ignored by git).
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eEuo pipefail -c

include hack/versions.env
export TOOLS_DIR ?= $(CURDIR)/.tools
export PATH := $(TOOLS_DIR)/bin:$(CURDIR)/.venv/bin:$(PATH)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
EXTRAS := operator,services,simulators,ai,dev

##@ General

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Setup

.PHONY: tools
tools: ## Install Debian packages and build kube-apiserver, etcd, helm, kind into .tools/bin
	hack/install-tools.sh --all

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with every component's Python dependencies

$(VENV)/.installed: pyproject.toml
	@echo "[venv] installing tier0[$(EXTRAS)] into $(VENV)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@mkdir -p .run
	@$(PY) -m pip install -q --upgrade pip >.run/pip-install.log 2>&1 || { cat .run/pip-install.log; exit 1; }
	@$(PY) -m pip install -q -e '.[$(EXTRAS)]' >>.run/pip-install.log 2>&1 || { cat .run/pip-install.log; exit 1; }
	@touch $@

##@ Local stack

.PHONY: up
up: tools venv ## Start the whole local stack (Redis x2, Mosquitto, RabbitMQ, control plane, regions)
	$(PY) -m tier0_dev up

.PHONY: down
down: ## Stop what `make up` started
	@test -x $(PY) && $(PY) -m tier0_dev down || true

.PHONY: status
status: ## Show each local component and where it listens
	$(PY) -m tier0_dev status

##@ Test

.PHONY: test
test: tools venv lint ## Lint, type-check and run every test tier (e2e is skipped without Docker)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Only the unit tests (no I/O)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: tools venv ## Only the tests against real redis-server, mosquitto, rabbitmq-server
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

.PHONY: test-controlplane
test-controlplane: tools venv ## Only the tests against a real kube-apiserver + etcd
	$(PY) -m pytest -m controlplane $(PYTEST_ARGS)

.PHONY: lint
lint: venv ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: venv ## Format and autofix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

##@ Clean

.PHONY: clean
clean: down ## Remove .run/ (local state); keeps .tools/ and .venv/
	rm -rf .run

##@ Benchmarks

.PHONY: bench
bench: tools venv ## Run every benchmark and print its table (BENCH=name,name to choose)
	$(PY) tests/bench/run.py
