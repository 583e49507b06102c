# `make run` and `make test` work from a fresh clone: each installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test serve migrate bench lint check-migrations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(FLASK) db upgrade
	$(FLASK) run --host $(HOST) --port $(PORT)

serve: $(VENV)/.runtime
	$(FLASK) db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# The deploy step of a deployment with several nodes: run once, before the nodes start (or
# restart) on the new code, with the same DATABASE_URL and SECRET_KEY as the nodes.
migrate: $(VENV)/.runtime
	$(FLASK) db upgrade

test: $(VENV)/.dev lint check-migrations
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# The models and the migrations must describe the same schema. This checks SQLite; the test
# suite checks both databases (tests/test_databases.py, on its own PostgreSQL server).
check-migrations: $(VENV)/.dev
	@tmp=$$(mktemp -d) && \
	DATABASE_URL=sqlite:///$$tmp/check.db $(FLASK) db upgrade >/dev/null 2>&1 && \
	DATABASE_URL=sqlite:///$$tmp/check.db $(FLASK) db check; status=$$?; rm -rf $$tmp; exit $$status

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
