# The two commands a fresh machine needs:
#   make quickstart   set up .venv, then fine-tune Gemma 3 270M offline on the built-in set and evaluate it
#   make test         set up .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
# torch 2.13.0: a CPU build where this project's CI machines keep one on disk, the usual build elsewhere
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: quickstart test setup browser clean

$(BIN)/gemsql: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(BIN)/gemsql

setup: $(BIN)/gemsql

quickstart: setup
	$(BIN)/gemsql run configs/quickstart.yaml

# The web page's end-to-end test drives Debian's headless Chromium (needs root for apt; CI runs as root).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "warning: Debian's chromium + chromium-driver could not be installed; the browser test will skip"

test: setup browser
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf runs .pytest_cache
