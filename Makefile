# The two commands of the README, and the steps behind them.
#   make run    install, then run EdgePlane on the embedded profile (no external server)
#   make test   install, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run serve test lint typecheck pytest install clean

# The dashboard (web/), when there is one: its packages (npm ci, redone when the lock
# file changes) and its build into web/dist (redone when a source changes).
ifneq ($(wildcard web/package.json),)
NPM := npm --prefix web
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -path web/dist -prune -o -type f -print)
WEB := web/dist/index.html
endif

.PHONY: web-check browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("EdgePlane needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,agent,training,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

web/node_modules/.installed: web/package.json web/package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SOURCES)
	$(NPM) run build

install: $(STAMP) $(WEB)

# The whole loop on one machine; DEMO_FLAGS="--bad-model" adds an automatic rollback.
run: $(STAMP) $(WEB)
	$(BIN)/edgeplane demo $(DEMO_FLAGS)

# Only the control plane (embedded profile), with its broker, worker and ingest.
serve: $(STAMP) $(WEB)
	$(BIN)/edgeplane serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The dashboard's type check, lint, JavaScript budget, and generated client (it must
# match web/openapi.json; tests/server/test_openapi_export.py checks that file).
web-check: $(WEB)
ifneq ($(WEB),)
	$(NPM) run typecheck
	$(NPM) run lint
	$(NPM) run check:size
	$(NPM) run check:api
endif

# The browser tests (tests/e2e) drive Debian's Chromium: install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "The browser tests need Chromium: run 'sudo apt-get install -y chromium'." >&2; \
	    exit 1; \
	  fi; \
	}

# The whole suite runs on the production profile (PostgreSQL, Redis, Mosquitto and S3
# through moto); the control plane's tests run again on the embedded profile (SQLite,
# no server). The agent's and training's tests do not depend on the profile.
pytest: $(STAMP) $(WEB) browser
	EDGEPLANE_TEST_PROFILE=production $(BIN)/pytest
	EDGEPLANE_TEST_PROFILE=embedded $(BIN)/pytest tests/server

test: lint typecheck web-check pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache web/node_modules web/dist
