# The two commands: `make lab` runs the lab, `make test` passes the tests. Both do all set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LAB := $(VENV)/bin/lab
TEST_ENV := LAB_ENV_FILE=tests/stack.env

.PHONY: lab test setup down status ui reset lint containers-up containers-down containers-restart containers-reset containers-status containers-logs

$(VENV)/.installed: pyproject.toml
	@echo "  · creating $(VENV) and installing the lab package (once)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	@$(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --upgrade pip
	@$(VENV)/bin/pip install --quiet --progress-bar off -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed
	@$(LAB) setup

lab: setup
	@$(LAB) up --ui-map

test: $(VENV)/.installed
	@$(LAB) setup --for-tests
	@$(TEST_ENV) $(LAB) reset >/dev/null
	@trap '$(TEST_ENV) $(LAB) down >/dev/null' EXIT; \
	 $(TEST_ENV) $(LAB) up && $(TEST_ENV) $(VENV)/bin/python -m pytest tests notebooks \
	   --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

down:
	@$(LAB) down
status:
	@$(LAB) status
ui:
	@$(LAB) ui
reset:
	@$(LAB) reset
lint: $(VENV)/.installed
	@$(VENV)/bin/ruff check lab tests

# --- container stack (needs a Docker engine) -------------------------------------------------------
containers-up:
	docker compose up -d --build
containers-down:
	docker compose down
containers-restart:
	docker compose down && docker compose up -d --build
containers-reset:
	docker compose down -v
containers-status:
	docker compose ps
containers-logs:
	docker compose logs -f $(SERVICE)
