# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
# The Makefile's own paths and commands: a value given for them on the command line is ignored.
override VENV := .venv
override BIN := $(VENV)/bin
override STAMP := $(VENV)/.installed

# What a user passes is kept as the text given and reaches the recipes as environment variables, which they quote
# ("$$DAY"); the tvtime command checks it (`tvtime days`, `tvtime generate`). So no value is ever spliced into a shell
# command, and make's own `$(...)` in a value is never run (make would expand it on export otherwise).
literal = $(if $(filter undefined,$(origin $(1))),$(2),$(value $(1)))
# The Python that makes the virtual environment: one command, run as named.
override PYTHON := $(call literal,PYTHON,python3)
export PYTHON
override TVTIME_DATA_DIR := $(call literal,TVTIME_DATA_DIR,$(CURDIR)/data)
override DAGSTER_HOME := $(call literal,DAGSTER_HOME,$(CURDIR)/.dagster_home)
export TVTIME_DATA_DIR DAGSTER_HOME
# The project's commands run as if its virtual environment were active (dg checks that it is).
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

override DEMO_START := $(call literal,DEMO_START,2024-03-01)
override DEMO_DAYS := $(call literal,DEMO_DAYS,3)
override DEMO_USERS := $(call literal,DEMO_USERS,20000)
# 2,000 shows (the app has ~90k) so that 20k demo users overlap enough for the recommender to learn.
override DEMO_SHOWS := $(call literal,DEMO_SHOWS,2000)
override SEED := $(call literal,SEED,0)
override DAY := $(call literal,DAY,)
override FROM := $(call literal,FROM,)
override TO := $(call literal,TO,)
export DEMO_START DEMO_DAYS DEMO_USERS DEMO_SHOWS SEED DAY FROM TO
override DAYS_WANTED = days as YYYY-MM-DD from 2024-01-01 to today (UTC), e.g.
# What a run shows on the console: what the assets log, each materialization and check result, step failures (with
# their errors) and the run's outcome; Dagster's other DEBUG events stay in the UI.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
override RUN_LOGS := --config-json '{"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}' 2>&1 \
	| awk '!/ - DEBUG - / || / - (ASSET_MATERIALIZATION|ASSET_CHECK_EVALUATION|STEP_FAILURE|RUN_SUCCESS|RUN_FAILURE) - / { print; fflush() }'

.PHONY: install system-packages demo materialize day backfill rebuild-warehouse summary ui test validate lint wheel smoke benchmark clean
# Debian packages the tests need: PostgreSQL (the production instance's storage is tested on a real
# server) and Chromium (the asset graph page is rendered headless).
override SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml setup.py
	"$$PYTHON" -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## demo: install, generate data, materialize the whole graph on embedded defaults, print a summary
demo: install
	$(BIN)/tvtime generate --start "$$DEMO_START" --days "$$DEMO_DAYS" --users "$$DEMO_USERS" --shows "$$DEMO_SHOWS" \
		--seed "$$SEED" --landing "$$TVTIME_DATA_DIR/landing"
	$(MAKE) --no-print-directory materialize summary
	@echo
	@echo "The last landed days hold only what spilled over from the generated ones (sessions past"
	@echo "midnight, late arrivals), so sensible_number_of_sessions flags them as an implausible drop."
	@echo "Open the UI:  make ui   (dg dev on http://127.0.0.1:3000, same data and run history)"

## materialize: the catalog, every landed day through the daily_pipeline job (one run per day), then the recommendations
## for the last generated day (DEMO_START + DEMO_DAYS - 1)
materialize: install
	$(BIN)/tvtime fail-dead-runs
	$(BIN)/dg launch --job refresh_show_catalog $(RUN_LOGS)
	for day in $$(ls "$$TVTIME_DATA_DIR/landing" | sed -n 's/^dt=//p'); do \
		echo "== $$day"; \
		$(BIN)/dg launch --job daily_pipeline --partition "$$day" $(RUN_LOGS) || exit 1; \
	done
	last=$$($(BIN)/tvtime days "$$DEMO_START" --count "$$DEMO_DAYS" | tail -n 1) && echo "== recommendations for $$last" && \
	{ $(BIN)/dg launch --job recommendations --partition "$$last" $(RUN_LOGS) \
		|| echo "The recommendations run failed; see why in the UI (make ui). On the demo's data the usual reason is the blocking check beats_popularity_baseline: factors that do not beat popularity are held back."; }

## day: the daily_pipeline job for one day, DAY=YYYY-MM-DD
day:
	@$(BIN)/tvtime days "$$DAY" >/dev/null || { echo "make day DAY=...: $(DAYS_WANTED) make day DAY=2024-03-02"; exit 2; }
	@$(MAKE) --no-print-directory backfill FROM="$$DAY" TO="$$DAY"

## backfill: the daily_pipeline job for every day from FROM to TO (YYYY-MM-DD, inclusive), one run per day
backfill: install
	@$(BIN)/tvtime days "$$FROM" "$$TO" >/dev/null || \
		{ echo "make backfill FROM=... TO=...: $(DAYS_WANTED) make backfill FROM=2024-03-01 TO=2024-03-03"; exit 2; }
	$(BIN)/tvtime fail-dead-runs
	for day in $$($(BIN)/tvtime days "$$FROM" "$$TO"); do \
		echo "== $$day"; \
		$(BIN)/dg launch --job daily_pipeline --partition "$$day" $(RUN_LOGS) || exit 1; \
	done

## rebuild-warehouse: publish again, from the lake, every day this instance has published (after the warehouse was lost)
rebuild-warehouse: install
	$(BIN)/tvtime fail-dead-runs
	$(BIN)/dg launch --job rebuild_warehouse $(RUN_LOGS)

summary: install
	$(BIN)/tvtime summary

ui: install
	$(BIN)/dg dev -h 127.0.0.1 -p 3000

validate: install
	$(BIN)/dg check defs

## lint: ruff's lint rules and its formatting, as CI runs them
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## wheel: the package as production installs it (deploy/Dockerfile, batch_images/factorization/Dockerfile), in dist/
wheel: install
	rm -rf build dist && $(BIN)/pip wheel --quiet --no-deps -w dist .

## system-packages: install Debian's PostgreSQL and Chromium if they are missing (apt-get; as root or with sudo)
system-packages:
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v chromium; } >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends postgresql chromium; }

## test: install with dev extras (and the Debian packages) and run the whole suite, slow tests included
test: install system-packages lint
	$(BIN)/python -m pytest -q -n 2 --durations=10

## benchmark: code-location load time per deployment, the factorization trainers, ingestion and sessionization of a 10M-event day
## (DuckDB against pandas, then DuckDB against Spark in local mode), and what the lake's commit records cost
## smoke: one generated day through the day-shaped graph on embedded defaults, in a throwaway data folder
smoke: install
	rm -rf "$(CURDIR)/.smoke" && mkdir -p "$(CURDIR)/.smoke/home" && cp .dagster_home/dagster.yaml "$(CURDIR)/.smoke/home/"
	$(BIN)/tvtime generate --start 2024-03-01 --days 1 --users 2000 --shows 300 --landing "$(CURDIR)/.smoke/data/landing"
	TVTIME_DATA_DIR="$(CURDIR)/.smoke/data" DAGSTER_HOME="$(CURDIR)/.smoke/home" $(BIN)/dg launch --job refresh_show_catalog $(RUN_LOGS)
	TVTIME_DATA_DIR="$(CURDIR)/.smoke/data" DAGSTER_HOME="$(CURDIR)/.smoke/home" $(BIN)/dg launch --job daily_pipeline \
		--partition 2024-03-01 $(RUN_LOGS)
	TVTIME_DATA_DIR="$(CURDIR)/.smoke/data" $(BIN)/tvtime summary

benchmark: install
	$(BIN)/python benchmarks/load_time_benchmark.py
	$(BIN)/python benchmarks/factorization_benchmark.py
	$(BIN)/python benchmarks/sessionization_benchmark.py
	$(BIN)/python benchmarks/spark_benchmark.py
	$(BIN)/python benchmarks/lake_commit_benchmark.py
	$(BIN)/python benchmarks/history_benchmark.py --short 30 --long 300 --rows-per-day 20000 --repeat 3
	$(BIN)/python benchmarks/hourly_landing_benchmark.py
	$(BIN)/python benchmarks/hourly_landing_benchmark.py --s3 --users 20000 --out benchmarks/out-hourly-s3
	$(BIN)/python benchmarks/ingestion_anchor_benchmark.py

clean:
	rm -rf "$$TVTIME_DATA_DIR" "$$DAGSTER_HOME/history" "$$DAGSTER_HOME/storage" "$$DAGSTER_HOME/schedules"
