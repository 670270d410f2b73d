# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrap-stamp
DEMO_DIR ?= runs/demo

.PHONY: demo test lint venv clean-venv

$(STAMP): .ci/bootstrap.sh
	bash .ci/bootstrap.sh

venv: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py --out $(DEMO_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
