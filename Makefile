# airgrid — the two commands are `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest -q

# The test tiers: pure and fast; real PostgreSQL and broker; running services end to end.
UNIT := tests/unit tests/deploy
INTEGRATION := tests/integration tests/security
E2E := tests/e2e tests/observability

.PHONY: run test provision provision-run install unit integration e2e lint typecheck \
	proto proto-check chaos test-observability deploy-generate clean

## run: set everything up, then the whole embedded stack with the simulator (Ctrl-C stops it)
run: provision-run
	$(BIN)/airgrid up

## test: set everything up, then lint, types and the three tiers; prints each tier's time
test: provision
	scripts/test-tiers

## provision: install what the suite needs and is missing (Debian servers, venv, Kafka jars)
provision:
	@scripts/provision test

provision-run:
	@scripts/provision run

install: provision-run

unit: provision
	$(PYTEST) $(UNIT)

integration: provision
	$(PYTEST) $(INTEGRATION)

e2e: provision
	$(PYTEST) $(E2E)

lint: provision-run
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: provision-run
	$(BIN)/mypy airgrid entrypoints services gateways loadtests tests

## proto: regenerate the event classes from proto/ (never edit airgrid/v1 by hand)
proto: provision-run
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. proto/airgrid/v1/*.proto

## proto-check: the generated classes match proto/ (also a unit test)
proto-check: provision-run
	$(PYTEST) tests/unit/test_generated_events.py

## chaos: the fault suite (worker kills, broker and database outages under load) with figures;
## CHAOS_ARGS="--broker kafka --quick" runs it on a 3-node Apache Kafka cluster, shorter
chaos: provision
	$(BIN)/python -m loadtests.chaos.run $(CHAOS_ARGS)

## test-observability: dashboards lint, promtool check/test rules, the Prometheus proof, manifests
test-observability: provision
	$(BIN)/python -m deploy.generate --check
	promtool check rules deploy/prometheus/alerts.yaml
	cd deploy/prometheus && promtool test rules alerts_test.yaml
	$(PYTEST) tests/observability tests/deploy

## deploy-generate: render dashboards, KafkaTopics, PrometheusRule, workloads and asyncapi.yaml
deploy-generate: provision-run
	$(BIN)/python -m deploy.generate

clean:
	rm -rf $(VENV) .airgrid .pytest_cache .mypy_cache .ruff_cache
