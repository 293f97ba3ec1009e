# edgeq developer entry points. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EDGEQ  := $(BIN)/edgeq
# Local datasets if this machine has them (no network needed): $EDGEQ_DATA_DIR, ../shared/data.
DATA   ?= $(patsubst %/mnist.npz,%,$(firstword $(wildcard $(EDGEQ_DATA_DIR)/mnist.npz ../shared/data/mnist.npz)))
DATA_OPT = $(if $(DATA),--data $(DATA))
PI_EMU_STATE ?= .pi-emu
PI_EMU_PORT  ?= 2222
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-unit test-slow test-arm test-all lint format demo bench-pi pi-emu \
	pi-emu-stop bench-pi-emu clean bench-android lab

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv and install edgeq (editable) with the dev and labgrid extras

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,labgrid]'
	touch $@

test: setup ## run the default test suite (no slow or arm tiers)
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: setup ## the unit tier: no training, no servers (under a minute)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-slow: setup ## run the slow tier (full-size training and conversion)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

test-arm: setup ## run the emulated Raspberry Pi tier (root, qemu-user-static, debootstrap)
	$(BIN)/pytest -m arm $(PYTEST_ARGS)

test-all: setup ## every tier
	$(BIN)/pytest -m '' $(PYTEST_ARGS)

lint: setup ## ruff lint and format check, and the import contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: setup ## train, quantize and deploy to the local target (no hardware), then the demos
	$(EDGEQ) deploy --target local $(DATA_OPT)
	$(EDGEQ) demo layer
	$(EDGEQ) demo rover --out out/rover

bench-pi: setup ## deploy to the `pi` target of edgeq.toml and print the verdict
	$(EDGEQ) deploy --target pi $(DATA_OPT)

pi-emu: ## build the emulated Pi (arm64 root, cached) and start its sshd on 127.0.0.1 (root)
	device_scripts/pi_emu/build_root.sh
	@mkdir -p $(PI_EMU_STATE)
	@test -f $(PI_EMU_STATE)/id_ed25519 || \
		ssh-keygen -q -t ed25519 -N '' -C edgeq-pi-emu -f $(PI_EMU_STATE)/id_ed25519
	device_scripts/pi_emu/start_sshd.sh start --port $(PI_EMU_PORT) \
		--authorized-keys $(PI_EMU_STATE)/id_ed25519.pub --state $(abspath $(PI_EMU_STATE))

pi-emu-stop: ## stop the emulated Pi's sshd and unmount its root
	device_scripts/pi_emu/start_sshd.sh stop --state $(abspath $(PI_EMU_STATE))

bench-pi-emu: setup pi-emu ## deploy to the emulated Pi (`pi-emu` target of edgeq.toml)
	$(EDGEQ) deploy --target pi-emu $(DATA_OPT) --runs 20 --min-s 0 --warmup-runs 2

bench-android: setup ## the Android path: deploy --target android (edgeq.toml) and print the verdict
	$(EDGEQ) deploy --target android $(DATA_OPT) $(BENCH_ANDROID_ARGS)

lab: setup ## nightly lab: `edgeq lab run` on lab.toml (LAB_INVENTORY=...), reports in out/lab/
	$(EDGEQ) lab run --inventory $(or $(LAB_INVENTORY),lab.toml) $(DATA_OPT) $(LAB_ARGS); \
	rc=$$?; [ $$rc -le 1 ] || exit $$rc; \
	$(EDGEQ) lab report --inventory $(or $(LAB_INVENTORY),lab.toml) \
		--format html,md,junit,json --out out/lab/ || exit $$?; \
	exit $$rc

clean: ## remove build and run outputs (keeps .venv)
	rm -rf build dist out results .pytest_cache .ruff_cache
