# Two-command set-up: `make demo` and `make test` both create .venv on first use.
# torch==2.13.0 is installed first so pip takes the local CPU wheel, never a CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo's Push seed: the model v3.1 solves 40 of the 50 evaluation seeds and 7 of seeds 0-9 (all but 1, 5
# and 7); seed 3 is the first solved one whose camera view shows the cube all the way (at seed 0 the hand
# hides it at the end). `make demo DEMO_SEED=1` shows a failure.
DEMO_SEED ?= 3

.PHONY: demo test bench default-model clean-venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plan-episode --env simjepa/Push-v0 --seed $(DEMO_SEED) --model default --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

default-model: $(STAMP)
	scripts/default_model.sh

bench: $(STAMP)
	$(BIN)/simjepa bench --out runs/bench.json

clean-venv:
	rm -rf $(VENV)
