# Callsite: `make demo` runs a server with a simulated call; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: demo test lint install browser nginx clean

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

test: $(STAMP) browser nginx lint
	$(BIN)/python -m tests.matrix $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy .

# Debian's nginx for the scale-out tests (run as an unprivileged process on a free port).
nginx:
	@if [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's nginx for the scale-out tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	else \
		echo "nginx is missing and this is not root: scale-out tests will skip (and fail under CI=true)."; \
	fi

# Debian's Chromium for the browser tests, installed when missing and running as root.
browser:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium is missing and this is not root: browser tests will skip (and fail under CI=true)."; \
	fi

clean:
	rm -rf $(VENV) var staticfiles test-artifacts .pytest_cache .mypy_cache .ruff_cache
