# Set-up is part of each target: a fresh clone needs only Python 3.11+ and these two commands.
#   make bench   creates .venv, installs tribench with every framework, runs the smoke suite
#   make test    creates .venv, installs tribench with every framework and the dev tools, runs the tests
#                (and Chromium, via scripts/ensure-chromium, for the HTML report's browser test)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.tribench-installed

.PHONY: bench test lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "tribench needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]' -c constraints.txt
	touch $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/tribench run --suite smoke

test: $(STAMP)
	bash scripts/ensure-chromium
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tribench harness backends suites reports tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
