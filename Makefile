# airgrid — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install proto proto-check lint typecheck unit integration e2e clean chaos test-observability deploy-generate promtool

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run: set everything up, then the whole embedded stack with the simulator (Ctrl-C stops it)
run: install
	$(BIN)/airgrid up

## test: set everything up, then unit, integration and e2e tests on real PostgreSQL and Kafka
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airgrid services gateways loadtests
	$(BIN)/python -m pytest -q tests

unit: install
	$(BIN)/python -m pytest -q tests/unit

## proto: regenerate the event classes from proto/ (never edit airgrid/v1 by hand)
proto: install
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. proto/airgrid/v1/*.proto

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy airgrid services gateways loadtests

## chaos: the fault suite (worker kills, broker and database outages under load) with figures
chaos: install
	$(BIN)/python -m loadtests.chaos.run

clean:
	rm -rf $(VENV) .airgrid .pytest_cache .mypy_cache .ruff_cache

## promtool: make sure Prometheus and promtool are installed (Debian package `prometheus`)
promtool:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus)

## test-observability: dashboards lint, promtool check/test rules, the Prometheus proof, manifests
test-observability: install promtool
	$(BIN)/python -m deploy.generate --check
	promtool check rules deploy/prometheus/alerts.yaml
	cd deploy/prometheus && promtool test rules alerts_test.yaml
	$(BIN)/python -m pytest -q tests/observability tests/deploy

## deploy-generate: render dashboards, KafkaTopics, PrometheusRule, workloads and asyncapi.yaml
deploy-generate: install
	$(BIN)/python -m deploy.generate
