# csbot: the two commands a newcomer needs are `make run` and `make test`.
# Each creates the virtual environment and installs what it needs first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A plain `torch` pulls a multi-GB CUDA build. This pin takes the CPU wheel that CI machines carry in
# their local wheel cache (their pip config points there); elsewhere the same pin may resolve to the
# CUDA build from PyPI. Override for a GPU box: make TORCH_SPEC=torch run (the install stamp records
# the spec, so a changed TORCH_SPEC reinstalls).
TORCH_SPEC ?= torch==2.13.0

.PHONY: FORCE run test lint bench-banking77 bench-sst2 bench-latency clean help

help:
	@echo "make run    set up and start the bot (Slack if tokens are in .env, else the terminal)"
	@echo "make test   set up and run the test suite"
	@echo "make lint   ruff"
	@echo "make bench-banking77 | bench-sst2 | bench-latency   benchmarks (need ../shared/data; see benchmarks/RESULTS.md)"
	@echo "make clean  remove the virtual environment and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(VENV)/.torch-spec | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train,dev]"
	touch $@

# Rewritten only when TORCH_SPEC changes, so `make TORCH_SPEC=... run` on an existing venv reinstalls.
$(VENV)/.torch-spec: FORCE | $(BIN)/python
	@echo "$(TORCH_SPEC)" | cmp -s - $@ || echo "$(TORCH_SPEC)" > $@

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
