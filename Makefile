# The README's two commands: `make demo` (the main job on the local backend) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch wheels on this machine's disk; pip's cap here refuses newer ones.
TORCH := torch==2.14.1 torchvision==0.29.1
# smdebug lives in an environment of its own: it pins protobuf<=3.20.3 (sagemaker-training
# needs >=5.28) and breaks on NumPy 2.
DEBUGGER_VENV ?= .venv-debugger
DBIN := $(DEBUGGER_VENV)/bin

.PHONY: setup browser lint format test test-debugger demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian's chromium: tests/report open report.html in a real headless browser. Installed
# only where apt-get and root are there (CI); elsewhere (a Mac, no root) the browser tests
# skip, each with a line saying so, and `make test` goes on.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "browser: no chromium, and no root apt-get to install it: the report's browser tests will skip (install chromium to run them)"; \
	fi

# ruff (lint + format check) and the import rules: dependencies point down only (pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup browser
	$(BIN)/python -m pytest -q

# torch is borrowed from the main environment, not installed again: the CUDA build is 5.5 GB
# and a second copy filled a CI machine's disk. A .pth line appends the main site-packages
# after this environment's own, so smdebug's protobuf 3.20.3 and numpy<2 shadow the main
# ones while torch, torchvision and their CUDA libraries come from there.
$(DEBUGGER_VENV)/.installed: tests/debugger/requirements.txt $(VENV)/.installed
	rm -rf $(DEBUGGER_VENV)
	$(PYTHON) -m venv $(DEBUGGER_VENV)
	$(DBIN)/pip install --quiet --upgrade pip
	$(DBIN)/pip install --quiet -r tests/debugger/requirements.txt
	$(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
		"$$($(DBIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/dogbreed-main-venv.pth"
	$(DBIN)/python -c 'import google.protobuf as p, numpy, torch, torchvision, smdebug; \
		assert p.__version__ == "3.20.3" and numpy.__version__ < "2", (p.__version__, numpy.__version__)'
	touch $@

test-debugger: $(DEBUGGER_VENV)/.installed
	$(DBIN)/python -m pytest -q tests/debugger

demo: setup
	scripts/demo.sh

bench: setup
	for bench in benchmarks/bench_*.py; do $(BIN)/python $$bench || exit 1; done

clean:
	rm -rf .dogbreed .dogbreed-demo .pytest_cache build
