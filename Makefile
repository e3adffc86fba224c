# Callsite: `make demo` runs a server with a simulated call; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: demo test lint install browser nginx services azurite clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Callsite needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# A fresh ACS shared secret per run unless one is set: the demo's simulator is given it too.
demo: $(STAMP)
	DJANGO_DEBUG=1 CALLSITE_ACS_SHARED_SECRET="$${CALLSITE_ACS_SHARED_SECRET:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')}" \
		$(BIN)/python manage.py demo

test: $(STAMP) browser nginx services azurite lint
	$(BIN)/python -m tests.matrix $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .

# A Debian package the tests need, installed when missing and running as root; otherwise the
# tests that need it skip (and fail under CI=true). $(1): package, $(2): binary, $(3): its tests.
define debian_package
	@if ls $(2) >/dev/null 2>&1 || command -v $(notdir $(2)) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's $(1) for the $(3)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else \
		echo "$(1) is missing and this is not root: the $(3) will skip (and fail under CI=true)."; \
	fi
endef

# nginx runs as an unprivileged process on a free port in the scale-out tests.
nginx:
	$(call debian_package,nginx,/usr/sbin/nginx,scale-out tests)

browser:
	$(call debian_package,chromium,/usr/bin/chromium,browser tests)

# The fault tests run their own redis-server and PostgreSQL cluster, to kill and restart.
services:
	$(call debian_package,redis-server,/usr/bin/redis-server,fault tests)
	$(call debian_package,postgresql,/usr/lib/postgresql/*/bin/pg_ctl,fault tests)

# Azurite, Microsoft's Azure Storage emulator (npm, pinned in tests/standins/azurite), is the
# Azure Blob the recordings' storage tests write to; Node.js and npm come from Debian if missing.
AZURITE := tests/standins/azurite
azurite:
	$(call debian_package,npm,/usr/bin/npm,Azure Blob recordings tests)
	@if [ -x $(AZURITE)/node_modules/.bin/azurite-blob ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
		echo "Installing Azurite for the Azure Blob recordings tests..."; \
		npm ci --prefix $(AZURITE) --no-audit --no-fund --ignore-scripts --loglevel=error; \
	fi

clean:
	rm -rf $(VENV) var staticfiles test-artifacts .pytest_cache .mypy_cache .ruff_cache $(AZURITE)/node_modules
