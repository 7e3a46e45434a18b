# The two commands of the README, plus JupyterLab.
#   make run    set up .venv, then execute every notebook at the toy profile (runs/toy/notebooks/)
#   make test   set up .venv, then run the whole test suite (notebooks at the smoke profile), one
#               pytest worker per core (tests/conftest.py keeps the notebook chain on one)
#   make lab    JupyterLab on notebooks/ with the kit's kernel
#   make book   the executed notebooks of runs/<PROFILE>/notebooks/ as HTML pages with their figures -> runs/<PROFILE>/book/
#   make scaled-env     the 7B path's environment in $(SCALED_VENV): vLLM, Ray and the kit, pinned by scaled/constraints.txt
#   make scaled-check   does scaled/constraints.txt resolve with the kit's ranges? (pip's resolver, metadata only; CI runs it)
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= toy
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mimo-lite-installed
SCALED_VENV ?= .venv-scaled
SCALED_SET := -c scaled/constraints.txt -e ".[scaled,dev]"

.PHONY: run test lab book setup clean-runs scaled-env scaled-check

run: setup
	$(PY) -m mimo_lite.cli notebooks --profile $(PROFILE)

test: setup
	$(PY) -m pytest -n auto --dist loadfile --no-loadscope-reorder tests

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

scaled-env:
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12), "the scaled environment (vLLM 0.33) needs Python 3.11 or 3.12; set PYTHON=python3.x"'
	$(PYTHON) -m venv $(SCALED_VENV)
	$(SCALED_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCALED_VENV)/bin/python -m pip install $(SCALED_SET)

# pip's resolver on the pinned set, reading each wheel's metadata through HTTP range requests
# (fast-deps) instead of downloading the wheels (several GB with vLLM's CUDA libraries).
scaled-check: setup
	@$(PY) -m pip install --dry-run --ignore-installed --use-feature=fast-deps \
	    --report $(VENV)/scaled-resolution.json $(SCALED_SET) >$(VENV)/scaled-resolution.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/scaled-resolution.log | tail -n 30 >&2; echo "scaled/constraints.txt does not resolve with the kit's dependency ranges on Python $$($(PY) -c 'import platform; print(platform.python_version())') (or the package index cannot be reached): see pip's message above." >&2; exit 1; }
	@$(PY) -c 'import json, sys; got = {p["metadata"]["name"].lower(): p["metadata"]["version"] for p in json.load(open(sys.argv[1]))["install"]}; print("scaled/constraints.txt resolves:", len(got), "packages, among them", ", ".join(f"{n} {got[n]}" for n in ("vllm", "torch", "transformers", "ray", "peft")))' $(VENV)/scaled-resolution.json
