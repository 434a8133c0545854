# The two commands a newcomer needs: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run docs test test-slow lint typecheck pytest test-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make run` needs only the service extra (FastAPI, uvicorn), not the dev tools and chDB: its own
# stamp, so a later `make test` still installs everything.
RUN_STAMP := $(VENV)/.installed-service
DOCS_STAMP := $(VENV)/.installed-docs

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[service]'
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(PY) -m auditbird.demo   # seed events, an admin key, then the service on :8000 (Ctrl-C stops)

$(DOCS_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# The documentation site, built offline into site/ (README, guides, API and CLI reference).
docs: $(DOCS_STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# What the tests need beyond the venv (Debian's chromium, ...): one script each in scripts/test-deps.d/.
test-deps:
	sh scripts/install-test-deps.sh

# The default suite skips the tests marked slow (1M-event files, fuzzing, soak, a spreadsheet); CI runs both.
pytest: $(STAMP) test-deps
	$(PY) -m pytest -m "not slow"

# pytest's exit 5 (no test collected) is not a failure here.
test-slow: $(STAMP) test-deps
	$(PY) -m pytest -m slow || [ $$? -eq 5 ]

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
