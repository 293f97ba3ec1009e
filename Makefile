# edgeq developer entry points. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EDGEQ  := $(BIN)/edgeq
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-slow test-arm test-all lint format demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv and install edgeq (editable) with dev extras

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: setup ## run the default test suite (no slow or arm tiers)
	$(BIN)/pytest $(PYTEST_ARGS)

test-slow: setup ## run the slow tier (full-size training and conversion)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

test-arm: setup ## run the emulated Raspberry Pi tier (root, qemu-user-static, debootstrap)
	$(BIN)/pytest -m arm $(PYTEST_ARGS)

test-all: setup ## every tier
	$(BIN)/pytest -m '' $(PYTEST_ARGS)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: setup ## the chapter's quantization exercises
	$(EDGEQ) demo layer
	$(EDGEQ) demo rover --out out/rover

clean: ## remove build and run outputs (keeps .venv)
	rm -rf build dist out results .pytest_cache .ruff_cache
