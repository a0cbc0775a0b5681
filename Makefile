# One command each: `make demo` (set up + open the TUI on the sample project), `make test` (set up + run the suite).
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and pinned, so pip never swaps in a multi-GB build behind our back. On this CPU machine
# pip takes the 2.13.0 CPU wheel from local disk; a GPU workstation picks its CUDA build, e.g.
#   make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
DEMO ?= demo/harbourline
BIN := $(VENV)/bin
STAMP := $(VENV)/.embtune-setup

.PHONY: setup demo test lint bench clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,onnx]"
	touch $(STAMP)

demo: setup
	test -f $(DEMO)/project.yaml || $(BIN)/embtune init $(DEMO) --from sample_project
	$(BIN)/embtune open $(DEMO)

test: setup
	$(BIN)/python -m pytest -n 2 --durations=10

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/startup.py

clean-demo:
	rm -rf $(DEMO)
