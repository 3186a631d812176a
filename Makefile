# Two commands a newcomer needs: `make train` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: install train test clean

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

clean:
	rm -rf $(VENV) .pytest_cache outputs multirun
