# Two commands a newcomer needs: `make train` and `make test`. Each installs what it needs.
# `make lint` checks the code with ruff (settings in pyproject.toml); CI runs it before the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
RUFF_VERSION ?= 0.17.6
STAMP := $(VENV)/.installed
RUFF_STAMP := $(VENV)/.ruff-$(RUFF_VERSION)

.PHONY: install train test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev,phonons]'
	touch $(STAMP)

train: install
	$(PY) train.py experiment=demo

test: install
	$(PY) -m pytest -q

lint: $(RUFF_STAMP)
	$(VENV)/bin/ruff check .

$(RUFF_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet ruff==$(RUFF_VERSION)
	touch $(RUFF_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache outputs multirun
