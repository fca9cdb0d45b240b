# csbot: the two commands a newcomer needs are `make run` and `make test`.
# Each creates the virtual environment and installs what it needs first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A plain `torch` pulls a multi-GB CUDA build; this pin takes the CPU wheel that
# CI machines carry on disk. Override for a GPU box: make TORCH_SPEC=torch run
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test lint bench-banking77 bench-sst2 bench-latency clean help

help:
	@echo "make run    set up and start the bot (Slack if tokens are in .env, else the terminal)"
	@echo "make test   set up and run the test suite"
	@echo "make lint   ruff"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/csbot up

test: $(VENV)/.installed
	$(BIN)/ruff check bot models training tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check bot models training tests benchmarks

bench-banking77: $(VENV)/.installed
	$(BIN)/python benchmarks/banking77.py

bench-sst2: $(VENV)/.installed
	$(BIN)/python benchmarks/sst2.py

bench-latency: $(VENV)/.installed
	$(BIN)/python benchmarks/latency.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
