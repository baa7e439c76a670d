# Two commands do all set-up on a fresh machine: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,landmarks]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/facexai demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check facexai tests experiments benchmarks

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
