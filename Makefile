# Two-command set-up: `make demo` and `make test` both create .venv on first use.
# torch==2.13.0 is installed first so pip takes the local CPU wheel, never a CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench default-model clean-venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plan-episode --env simjepa/Reach-v0 --seed 0 --model default --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

default-model: $(STAMP)
	scripts/default_model.sh

bench: $(STAMP)
	$(BIN)/simjepa bench --out runs/bench.json

clean-venv:
	rm -rf $(VENV)
