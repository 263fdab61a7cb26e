# Two commands do everything: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
HOST    ?= 127.0.0.1
PORT    ?= 5000
export HOST PORT

.PHONY: run test install install-dev migrate clean bench

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

migrate: install
	$(VENV)/bin/flask --app app db upgrade

## Serve the app with gunicorn on $(HOST):$(PORT), SQLite in instance/ unless DATABASE_URL is set.
run: migrate
	$(VENV)/bin/gunicorn --config gunicorn.conf.py

## Install everything the tests need and run the whole suite.
test: install-dev
	$(VENV)/bin/python -m pytest

bench: install-dev
	$(VENV)/bin/python bench/api_bench.py

clean:
	rm -rf $(VENV) instance .pytest_cache
