# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrap-stamp
DEMO_DIR ?= runs/demo
# lint-imports reads the import graph of one package from one folder: this view links bso_deploy/, export/
# and hardware/ as the one package bso_deploy they are installed as (docs/architecture.md).
IMPORT_VIEW := $(VENV)/import-view

.PHONY: demo test lint imports venv clean-venv

$(STAMP): .ci/bootstrap.sh
	bash .ci/bootstrap.sh

venv: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py --out $(DEMO_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory imports
	$(PY) -m pytest -q --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory imports

# The import contracts in pyproject.toml ([tool.importlinter]).
imports: $(STAMP)
	rm -rf $(IMPORT_VIEW) && mkdir -p $(IMPORT_VIEW)/bso_deploy
	ln -s $(CURDIR)/bso_deploy/* $(IMPORT_VIEW)/bso_deploy/
	ln -s $(CURDIR)/export $(CURDIR)/hardware $(IMPORT_VIEW)/bso_deploy/
	ln -s $(CURDIR)/.ci/import_contracts.py $(IMPORT_VIEW)/
	cd $(IMPORT_VIEW) && $(CURDIR)/$(VENV)/bin/lint-imports --config $(CURDIR)/pyproject.toml --no-cache --no-logo

clean-venv:
	rm -rf $(VENV)
