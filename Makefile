# The two commands: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test sysdeps lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

sysdeps:
	bash scripts/install-system-deps.sh

demo: sysdeps $(STAMP)
	$(VENV)/bin/offsite demo

test: sysdeps $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf .state
