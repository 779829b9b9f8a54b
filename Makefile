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
EXTRAS := operator,services,simulators,kubectl,ai,dev
comma := ,

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

$(VENV)/.installed: pyproject.toml hack/requirements/dev.txt
	@echo "[venv] installing tier0[$(EXTRAS)] into $(VENV)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@mkdir -p .run
	@$(PY) -m pip install -q --upgrade pip >.run/pip-install.log 2>&1 || { cat .run/pip-install.log; exit 1; }
	@$(PY) -m pip install -q -c hack/requirements/dev.txt -e '.[$(EXTRAS)]' >>.run/pip-install.log 2>&1 || { cat .run/pip-install.log; exit 1; }
	@touch $@

##@ Deploy (the product on a cluster)

# CLUSTER=node (the default): the built-in node (needs root); CLUSTER=kind: a kind cluster on a Docker
# engine (the project starts its own where none answers). A running engine never changes the choice.
CLUSTER ?= node

.PHONY: up
up: ## Deploy tier0 on a cluster (CLUSTER=node: the built-in node; CLUSTER=kind), print how to reach it
ifeq ($(CLUSTER),kind)
	$(MAKE) kind-up
else
	$(MAKE) tools venv node-up
	$(PY) -m tier0_dev.node deploy
endif

.PHONY: down
down: ## Remove what `make up` made (the built-in node; CLUSTER=kind: the kind cluster and the project's engine)
ifeq ($(CLUSTER),kind)
	$(MAKE) kind-down
else
	@test -x $(PY) && $(PY) -m tier0_dev.node down || true
endif

.PHONY: status
status: ## Show the cluster `make up` made and tier0's pods on it (CLUSTER=kind for kind's)
ifeq ($(CLUSTER),kind)
	$(PY) -m tier0_dev.kind status
else
	$(PY) -m tier0_dev.node status
endif

##@ Built-in node (a real single-node Kubernetes on this machine)

.PHONY: node-up
node-up: tools venv images ## Start the node: etcd, apiserver, controllers, containerd, kubelet, kube-proxy, CoreDNS, storage
	$(PY) -m tier0_dev.node up

.PHONY: node-down
node-down: ## Stop the node and put the machine back (processes, iptables, bridge, mounts, host paths, sysctls)
	@if test -x $(PY); then $(PY) -m tier0_dev.node down; else echo "no .venv: make venv first"; exit 1; fi

.PHONY: node-status
node-status: ## Show the node's components, its pods and the KUBECONFIG to use
	$(PY) -m tier0_dev.node status

##@ Local process stack (fast development, no cluster)

.PHONY: stack-up
stack-up: tools venv ## Start the process stack (Redis x2, Mosquitto, RabbitMQ, control plane, regions) on fixed ports
	$(PY) -m tier0_dev up

.PHONY: stack-down
stack-down: ## Stop what `make stack-up` started
	@test -x $(PY) && $(PY) -m tier0_dev down || true

.PHONY: stack-status
stack-status: ## Show each process of the stack and where it listens
	$(PY) -m tier0_dev status

##@ Test

# Tests live in behaviour folders (tests/README.md); each file declares its tier with a marker
# (`pytestmark = pytest.mark.unit`) and the targets below select a tier with `-m`.
.PHONY: test
test: tools venv lint images ## Lint, type-check and run every test tier, heavy tiers first (e2e on the built-in node, or TIER0_E2E_KUBECONFIG)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Only the unit tests (-m unit: no I/O)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: tools venv ## Only the tests against real redis-server, mosquitto, rabbitmq-server (-m integration)
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

.PHONY: test-controlplane
test-controlplane: tools venv ## Only the tests against a real kube-apiserver + etcd (-m controlplane)
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

##@ Console and HTTP surface

SCHEMATHESIS_EXAMPLES ?= 200

.PHONY: schemathesis
schemathesis: tools venv ## Schemathesis --checks all against both regions, longer (SCHEMATHESIS_EXAMPLES=200, SCHEMATHESIS_SEED=n)
	SCHEMATHESIS_EXAMPLES=$(SCHEMATHESIS_EXAMPLES) $(PY) -m pytest tests/api/test_api_schemathesis.py -s --timeout 3600 $(PYTEST_ARGS)

.PHONY: test-browser
test-browser: tools venv ## The console's tests in Debian's chromium (-m browser, Playwright); screenshots into .run/screenshots/
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

##@ kubectl plugin (`kubectl tier0`)

KREW_VERSION ?= v0.1.0
KREW_PLATFORMS ?= linux/amd64
KREW_URI_BASE ?= https://github.com/tier0/tier0/releases/download/$(KREW_VERSION)

.PHONY: kubectl-plugin
kubectl-plugin: venv ## Install `kubectl tier0`: kubectl-tier0 in .venv/bin, linked into .tools/bin (put either on PATH)
	@mkdir -p $(TOOLS_DIR)/bin
	ln -sf $(CURDIR)/$(VENV)/bin/kubectl-tier0 $(TOOLS_DIR)/bin/kubectl-tier0
	@echo "kubectl tier0: $(TOOLS_DIR)/bin/kubectl-tier0 (export PATH=$(TOOLS_DIR)/bin:\$$PATH; kubectl tier0 --help)"

.PHONY: kubectl-plugin-dist
kubectl-plugin-dist: venv ## krew archives (KREW_PLATFORMS=linux/amd64,...) and the manifest with their sha256 into .run/krew/
	$(PY) -m tier0_dev.krew --version $(KREW_VERSION) --platforms $(KREW_PLATFORMS) --uri-base $(KREW_URI_BASE)

##@ AI samples

AI_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: ai-samples
ai-samples: venv ## Generate the seeded sample access log (12,000 lines) into .run/ai/
	@mkdir -p .run/ai
	$(PY) -m tier0_services.ai logs generate --out .run/ai/sample-access.log --entries 12000 --seed 7

.PHONY: ai-load
ai-load: ai-samples ## Load the sample images, corpus and access log into Redis (AI_REDIS_URL)
	$(PY) -m tier0_services.ai --redis-url $(AI_REDIS_URL) images samples
	$(PY) -m tier0_services.ai --redis-url $(AI_REDIS_URL) docs samples
	$(PY) -m tier0_services.ai --redis-url $(AI_REDIS_URL) logs import .run/ai/sample-access.log

##@ Clean

.PHONY: clean
clean: stack-down ## Remove .run/ (local state); keeps .tools/ and .venv/
	rm -rf .run

##@ Benchmarks

.PHONY: bench
bench: tools venv ## Run every benchmark and print its table (BENCH=name,name to choose)
	$(PY) tests/bench/run.py

.PHONY: bench-failover
bench-failover: tools venv ## RegionPair switchover + failover under a writer, 20 runs each (RUNS=n)
	RUNS=$${RUNS:-20} BENCH=failover $(PY) tests/bench/run.py

##@ Operator

# The operator's own tests, in the behaviour folders they belong to (most in tests/failover).
OPERATOR_TESTS := $(addprefix tests/failover/test_,decide.py detection.py round.py transition.py problems.py lease.py \
  kubernetes_witness.py kubernetes_witness_apiserver.py write_guard_and_pipeline.py operator_epoch_guard_pipeline.py \
  operator_lifecycle.py operator_resilience.py failure_detection.py) \
  tests/access/test_generated_secrets.py tests/access/test_operator_owns.py tests/health/test_operator_liveness.py \
  tests/charts/test_regionpair_crd.py tests/kubectl/test_kubectl_tier0.py tests/dev/test_bringup_idempotent.py

.PHONY: test-operator
test-operator: tools venv ## The RegionPair operator's unit tests and its tests on a real apiserver + Redis
	$(PY) -m pytest $(OPERATOR_TESTS) $(PYTEST_ARGS)

.PHONY: test-failover
test-failover: tools venv ## Every tier of the failover behaviour (tests/failover: the operator's decisions, transitions, the API's switchover)
	$(PY) -m pytest tests/failover $(PYTEST_ARGS)

##@ Charts and images

IMAGE_TAG ?= 0.1.0
export KIND_CLUSTER ?= tier0

.PHONY: crds
crds: venv ## Generate crds/ from the RegionPair model (hack/tier0_dev/crd.py), then charts-sync
	$(PY) -m tier0_dev.crd
	$(MAKE) charts-sync

.PHONY: charts-sync
charts-sync: ## Copy crds/ and operator/rbac/ into the operator chart; regenerate dashboards/ (+ the chart's copy)
	cp crds/*.yaml charts/tier0-operator/files/crds/
	cp operator/rbac/role.yaml operator/rbac/leader-election.yaml charts/tier0-operator/files/rbac/
	$(PY) -m tier0_dev.dashboards

.PHONY: dashboards
dashboards: venv ## Regenerate the Grafana dashboards from hack/tier0_dev/dashboards.py
	$(PY) -m tier0_dev.dashboards

.PHONY: dashboards-check
dashboards-check: ## Check every dashboard against Grafana's schema, strictly (hack/dashcheck)
	hack/install-tools.sh --only dashcheck
	$(TOOLS_DIR)/bin/dashcheck dashboards/*.json charts/tier0/dashboards/*.json

.PHONY: lock
lock: venv ## Re-pin hack/requirements/*.txt (images: hash-locked per component; dev: constraints of make venv)
	$(PY) -m pip install -q uv
	for c in operator services simulators; do \
	  extras=$$c; [ $$c = services ] && extras="services --extra ai"; \
	  $(VENV)/bin/uv pip compile pyproject.toml --extra $$extras --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --quiet -o hack/requirements/$$c.txt; \
	done
	$(VENV)/bin/uv pip compile pyproject.toml $(foreach e,$(subst $(comma), ,$(EXTRAS)),--extra $(e)) \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --quiet -o hack/requirements/dev.txt

.PHONY: charts-lint
charts-lint: tools ## helm lint --strict both charts (default and all-on values)
	for c in charts/tier0-operator charts/tier0; do \
	  helm lint --strict $$c --kube-version $(KUBERNETES_VERSION:v%=%); \
	  helm lint --strict $$c --kube-version $(KUBERNETES_VERSION:v%=%) -f $$c/ci/all-on-values.yaml; \
	done

.PHONY: charts-score
charts-score: tools venv ## kube-score over both charts (default and all-on values); exceptions in charts/kube-score.yaml
	$(PY) -m pytest tests/charts/test_charts_score.py -q

.PHONY: images
images: venv ## Build every image with buildah (base, tier0, stand-ins, node add-ons): the built-in node's and kind's
	IMAGE_TAG=$(IMAGE_TAG) $(PY) -m tier0_dev.node images

##@ kind (a kind cluster on a Docker engine: the path the GitHub workflow runs)

.PHONY: kind-tools
kind-tools: ## Install the kind path's tools: Docker engine (if none), buildah, kind, helm, kubeadm, the node's binaries
	hack/install-tools.sh --kind --redis-stack

.PHONY: docker-up
docker-up: ## Start the project's Docker engine (own socket and data; none if an engine already answers)
	hack/install-tools.sh --docker
	$(PY) -m tier0_dev.kind docker-up

.PHONY: docker-down
docker-down: ## Stop the project's Docker engine and remove what it left (an engine someone else runs is left alone)
	@if test -x $(PY); then $(PY) -m tier0_dev.kind docker-down; else echo "no .venv: make venv first"; exit 1; fi

.PHONY: docker-status
docker-status: ## Show the Docker engine the kind path uses, its adaptations and containers
	$(PY) -m tier0_dev.kind docker-status

.PHONY: kind-up
kind-up: kind-tools venv images ## Engine, node image, kind cluster, `kind load` of the images, both charts, the RegionPair Healthy
	$(PY) -m tier0_dev.kind up

.PHONY: kind-e2e
kind-e2e: venv ## The e2e tier (-m e2e: tests/system, as on the built-in node) on the kind cluster (after kind-up)
	$(PY) -m tier0_dev.kind e2e $(PYTEST_ARGS)

.PHONY: kind-down
kind-down: ## Delete the kind cluster and stop the project's Docker engine, leaving nothing behind
	@if test -x $(PY); then $(PY) -m tier0_dev.kind down; else echo "no .venv: make venv first"; exit 1; fi

.PHONY: kind-status
kind-status: ## Show the kind cluster, its engine and tier0's pods
	$(PY) -m tier0_dev.kind status

.PHONY: kind-test
kind-test: ## The kind path end to end, timed: kind-up, kind-e2e, then kind-down (also when a step failed)
	@start=$$SECONDS; rc=0; \
	{ $(MAKE) kind-up && $(MAKE) kind-e2e; } || rc=$$?; \
	$(MAKE) kind-down || rc=$$((rc ? rc : 1)); \
	echo "kind-test: exit $$rc in $$((SECONDS - start)) s"; exit $$rc
