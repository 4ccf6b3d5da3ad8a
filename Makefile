# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint format install lock bench textcheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Every transitive dependency from the lock files (hash-checked; README, Dependencies), then
# the project itself on top without resolving anything again.
$(RUN_STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(TEST_STAMP): pyproject.toml requirements.lock requirements-test.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(RUN_STAMP)

## lock: regenerate requirements.lock and requirements-test.lock from pyproject.toml's pins
lock: $(TEST_STAMP)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --universal --generate-hashes \
		-o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test -c requirements.lock --python-version 3.11 \
		--universal --generate-hashes -o requirements-test.lock

install: $(RUN_STAMP)

## run: install into .venv and serve on 127.0.0.1:8080 (SQLite default, no other setup)
run: $(RUN_STAMP)
	mkdir -p var
	CDS_HOST=$${CDS_HOST:-127.0.0.1} CDS_PORT=$${CDS_PORT:-8080} PATH="$(abspath $(BIN)):$$PATH" \
		$(BIN)/python -m cds_service.cli serve

## test: lint and the whole test suite
test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: text reader, record corpus over HTTP, engine, HTTP (service vs floor, throughput,
## scale) and the report over 1,000,000 rows on SQLite and PostgreSQL; results in
## bench/results/*.json (benchmarks, not tests)
BENCH_POSTGRES ?= $(or $(CDS_TEST_DATABASE_URL),postgresql://postgres@127.0.0.1:5432/test)
bench: $(TEST_STAMP)
	$(BIN)/python bench/text.py
	$(BIN)/python bench/records.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/http_load.py
	$(BIN)/python bench/report.py --postgres "$(BENCH_POSTGRES)"

## textcheck: score the text reader on the labelled sentence corpus, every error listed
textcheck: $(RUN_STAMP)
	$(BIN)/cds-service textcheck

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
