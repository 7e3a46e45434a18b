# The two commands of the README, plus JupyterLab.
#   make run    set up .venv, then execute every notebook at the toy profile (runs/toy/notebooks/)
#   make test   set up .venv, then run the whole test suite (notebooks at the smoke profile)
#   make lab    JupyterLab on notebooks/ with the kit's kernel
#   make book   the executed notebooks of runs/<PROFILE>/notebooks/ as HTML pages with their figures -> runs/<PROFILE>/book/
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= toy
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mimo-lite-installed

.PHONY: run test lab book setup clean-runs

run: setup
	$(PY) -m mimo_lite.cli notebooks --profile $(PROFILE)

test: setup
	$(PY) -m pytest tests

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

book: setup
	$(PY) -m mimo_lite.cli book --profile $(PROFILE)

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "mimo-lite needs Python >= 3.10; set PYTHON=python3.x"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mimo-lite)" >/dev/null
	touch $(STAMP)

clean-runs:
	rm -rf runs/
