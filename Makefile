# lapse — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKACTL := $(PY) infra/kafka/kafkactl.py

# The test broker lives beside the demo broker, on its own ports and data folder.
TEST_KAFKA_ENV := LAPSE_KAFKA_PORT=$${LAPSE_TEST_KAFKA_PORT:-19092} LAPSE_KAFKA_CONTROLLER_PORT=$${LAPSE_TEST_KAFKA_CONTROLLER_PORT:-19093} LAPSE_KAFKA_DATA=$(CURDIR)/.cache/kafka/test-data
PYTEST_ARGS ?=

.PHONY: help venv kafka-up kafka-down kafka-reset topics demo test test-unit bench browser clean

help:
	@echo "make demo    # local Kafka + topics + worker + a realistic simulated stream; revocations printed"
	@echo "make test    # venv, install, test broker up, the whole test suite, broker down"
	@echo "make bench   # benchmarks (bench/), each against a baseline measured in the same run"
	@echo "make kafka-up | kafka-down | kafka-reset   # the local broker (127.0.0.1:9092)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found: install Python 3.11+"; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: lapse needs Python 3.11+"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

kafka-up:
	@$(KAFKACTL) up

kafka-down:
	@$(KAFKACTL) down

kafka-reset:
	@$(KAFKACTL) reset

topics: venv kafka-up
	$(BIN)/lapse topics create

demo: venv kafka-up topics
	$(BIN)/lapse demo

# Chromium for the browser test (Debian's package; test tools cannot download their own browser here).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing (apt-get install chromium); browser tests will be skipped"; fi; }

test: venv browser
	@$(TEST_KAFKA_ENV) $(KAFKACTL) up
	@set -o pipefail; status=0; \
	  LAPSE_BOOTSTRAP=127.0.0.1:$${LAPSE_TEST_KAFKA_PORT:-19092} $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  $(TEST_KAFKA_ENV) $(KAFKACTL) down; \
	  exit $$status

# Engine and adapter unit tests only: no broker, seconds.
test-unit: venv
	LAPSE_SKIP_KAFKA=1 $(BIN)/python -m pytest -m "not kafka and not browser and not slow" -q

bench: venv kafka-up
	@for b in bench/kafka_baseline.py bench/producer_bench.py bench/engine_bench.py bench/engine_instructions.py bench/adapter_bench.py bench/model_bench.py bench/model_instructions.py bench/service_bench.py bench/hostile_bench.py bench/ssf_bench.py bench/enforce_bench.py; do \
	  if [ -f $$b ]; then echo "== $$b"; $(BIN)/python $$b || exit 1; fi; done

clean:
	rm -rf .cache/worker .pytest_cache build *.egg-info
