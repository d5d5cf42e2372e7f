# Two commands for a fresh machine: `make run` (the service on the embedded default) and
# `make test` (the whole suite). Both install what is missing, system packages included.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# make test TEST_WORKERS=0: the suite in one process (the default: one worker per core).
TEST_WORKERS ?= auto
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test faults install system-deps postgres lint typecheck unit bench clean prompts

# make run PORT=8181 DATA=/tmp/callcenter-demo: another port and data folder for the demo.
run: install
	$(BIN)/callcenter demo $(if $(PORT),--port $(PORT)) $(if $(DATA),--data-dir $(DATA))

# mypy (a minute from a cold cache, one core) checks while the tests run; either failing fails.
test: install postgres lint
	@mkdir -p build; $(BIN)/mypy > build/mypy.log 2>&1 & mypy=$$!; \
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder; rc=$$?; \
	wait $$mypy || rc=1; cat build/mypy.log; exit $$rc

# The fault suite (docs/reliability.md): minutes, real processes; figures in build/fault-figures.jsonl.
faults: install postgres
	@mkdir -p build && rm -f build/fault-figures.jsonl
	FAULT_FIGURES=$(CURDIR)/build/fault-figures.jsonl $(BIN)/pytest -q -m "faults or not faults" tests/test_fault_*.py
	@$(BIN)/python scripts/fault-table.py build/fault-figures.jsonl

install: system-deps $(STAMP)
	@bash scripts/vendor-js.sh

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing="$$missing fonts-wqy-microhei"; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

postgres:
	@bash scripts/ensure-postgres.sh

# The dialplan's prompts (dialer/prompts.py) as 8 kHz mono WAVs, from the Chinese texts in
# docker/asterisk/sounds/*.txt; docker/compose.yaml mounts that folder as sounds/custom.
prompts:
	@missing=""; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v sox >/dev/null 2>&1 || missing="$$missing sox"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@sh scripts/make-prompts.sh docker/asterisk/sounds

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

bench: install postgres
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
