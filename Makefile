# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_LIBS := .cache/kafka-libs
STAMP_PY := $(VENV)/.installed
STAMP_KAFKA := $(KAFKA_LIBS)/.fetched
JS_TESTS := tests/js
STAMP_JS := $(JS_TESTS)/node_modules/.installed
PYTEST_ARGS ?=

.PHONY: run run-cluster test bench bench-query bench-scale bench-tools tracker-tools install kafka-jars lint format clean reset

run: install kafka-jars ## Start Kafka and every service on http://127.0.0.1:8000 (foreground)
	$(PY) -m deploy.run_local

run-cluster: install kafka-jars ## The same against a local 3-broker Kafka cluster (ports 9092-9094, replication 3)
	$(PY) -m deploy.run_local --kafka-nodes 3

test: install kafka-jars tracker-tools ## Run the whole test suite against a real Kafka broker and embedded ClickHouse
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install kafka-jars bench-tools ## Benchmarks, within 15 minutes (not part of `make test`); writes bench/results/latest.*
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench $(BENCH_ARGS)

# The query figures on 10M events (against DuckDB and PostgreSQL, as streamed and settled) and the
# dashboard's first paint: each section prepares its own data, about 20 minutes together. Their
# figures go into the same bench/results/latest.* (each section keeps its own date and commit).
bench-query: install bench-tools tracker-tools ## Query and dashboard benchmarks on 10M events (not part of `make bench`)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench --only query,dashboard $(BENCH_ARGS)

# Growth of the query figures with the data (1M, 10M, 30M events; BENCH_MAX_EVENTS=100000000 adds 100M):
# ours and DuckDB only, so neither Kafka nor the Debian tools are needed. Writes bench/results/scale.*.
bench-scale: install ## Query latency and memory at 1M-30M events (not part of `make bench`)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench.scale $(BENCH_SCALE_ARGS)

# wrk (load generator) and PostgreSQL 15 (a baseline) come from Debian's packages.
bench-tools:
	@command -v wrk >/dev/null && test -x /usr/lib/postgresql/15/bin/postgres || \
		{ apt-get update -qq && apt-get install -y -qq wrk postgresql-15 >/dev/null; }

# The trackers the tests run unchanged (posthog-js, posthog-node, analytics.js from npm, pinned by
# tests/js/package-lock.json) and the browser they run in (Debian's Chromium and its driver).
tracker-tools: $(STAMP_JS)
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

$(STAMP_JS): $(JS_TESTS)/package-lock.json
	npm ci --prefix $(JS_TESTS) --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP_PY)

$(STAMP_PY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

kafka-jars: $(STAMP_KAFKA)

$(STAMP_KAFKA): deploy/kafka/pom.xml
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(abspath $(KAFKA_LIBS))
	touch $@

lint: install ## ruff (lint and format) everywhere, mypy on shared/ and services/
	$(VENV)/bin/ruff check shared services deploy tests bench
	$(VENV)/bin/ruff format --check shared services deploy tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format shared services deploy tests bench
	$(VENV)/bin/ruff check --fix shared services deploy tests bench

reset: ## Delete all local state (events, snapshots, Kafka logs, generated keys)
	rm -rf data

clean: reset
	rm -rf $(VENV) .cache .pytest_cache
