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

## The dashboard's front-end assets: htmx from the npm registry, pinned in package-lock.json.
static/vendor/htmx.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

install: $(VENV)/.installed static/vendor/htmx.min.js

install-dev: $(VENV)/.installed-dev static/vendor/htmx.min.js

MIGRATE := $(VENV)/bin/flask --app app db upgrade

migrate: install
	$(MIGRATE)

## Serve the app on $(HOST):$(PORT), SQLite in instance/ unless DATABASE_URL is set.
## Two gunicorn masters (see masking/web/serve.py): the public one, and an internal one on
## 127.0.0.1:$(INTERNAL_API_PORT) (default PORT+1) that serves only the API the dashboard calls.
## The launcher's settings (HOST, PORT, WEB_*, ...) are checked first: a bad one stops it with
## one line, before the migration.
run: install
	@$(PY) -m masking.web.serve --check
	$(MIGRATE)
	$(PY) -m masking.web.serve

## Install everything the tests need and run the whole suite.
test: install-dev
	$(VENV)/bin/python -m pytest -n 2

bench: install-dev
	$(VENV)/bin/python bench/api_bench.py

clean:
	rm -rf $(VENV) instance .pytest_cache node_modules static/vendor
