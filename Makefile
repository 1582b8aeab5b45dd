# deskgate developer entry points. Every target installs what is missing first (see `deps`)
# and is a quick no-op for what is already in place.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

# The venv's interpreter: python3.11, else python3 when it is 3.11 or newer (checked below).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
VENV_STAMP := $(VENV)/.deskgate-installed
NPM_STAMP := node_modules/.deskgate-installed
NOVNC_SOURCE := node_modules/@novnc/novnc
NOVNC_DIR := gateway/web/static/novnc
# The noVNC copy is complete once its LICENSE.txt is there: it is copied last.
NOVNC_STAMP := $(NOVNC_DIR)/LICENSE.txt
# xterm.js (the terminal page) and asciinema-player (terminal recordings), complete once their LICENSE is there.
XTERM_DIR := gateway/web/static/xterm
XTERM_STAMP := $(XTERM_DIR)/LICENSE
ASCIINEMA_DIR := gateway/web/static/asciinema
ASCIINEMA_STAMP := $(ASCIINEMA_DIR)/LICENSE
PYTEST_ARGS ?=

.PHONY: deps system-deps test lint-deploy demo bench bench-live soak fuzz messages clean distclean

deps: system-deps $(VENV_STAMP) $(NOVNC_STAMP) $(XTERM_STAMP) $(ASCIINEMA_STAMP)

system-deps:
	@PYTHON='$(PYTHON)' deploy/install-system-deps.sh

# Order-only on system-deps: it must run first (python3-venv, npm) without forcing a rebuild.
# setup.py compiles gateway/rfb/boundaries.py with mypyc: a changed framer is compiled again.
$(VENV_STAMP): setup.cfg pyproject.toml setup.py gateway/rfb/boundaries.py | system-deps
	@'$(PYTHON)' -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "deskgate: $(PYTHON) is older than 3.11; run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@if ! $(VENV)/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		echo "deskgate: creating $(VENV) with $(PYTHON)"; \
		rm -rf $(VENV); \
		'$(PYTHON)' -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -e '.[test]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund
	@touch $@

$(NOVNC_STAMP): $(NPM_STAMP)
	rm -rf $(NOVNC_DIR)
	mkdir -p $(NOVNC_DIR)/docs
	cp -R $(NOVNC_SOURCE)/core $(NOVNC_SOURCE)/vendor $(NOVNC_SOURCE)/AUTHORS $(NOVNC_DIR)/
	cp $(NOVNC_SOURCE)/docs/LICENSE.* $(NOVNC_DIR)/docs/
	cp $(NOVNC_SOURCE)/LICENSE.txt $@

$(XTERM_STAMP): $(NPM_STAMP)
	rm -rf $(XTERM_DIR)
	mkdir -p $(XTERM_DIR)
	cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
		node_modules/@xterm/addon-fit/lib/addon-fit.js $(XTERM_DIR)/
	cp node_modules/@xterm/xterm/LICENSE $@

$(ASCIINEMA_STAMP): $(NPM_STAMP)
	rm -rf $(ASCIINEMA_DIR)
	mkdir -p $(ASCIINEMA_DIR)
	cp node_modules/asciinema-player/dist/bundle/asciinema-player.min.js \
		node_modules/asciinema-player/dist/bundle/asciinema-player.css $(ASCIINEMA_DIR)/
	cp node_modules/asciinema-player/LICENSE $@

# The target's framer runs compiled (mypyc) where it was built; its tests run once more on the same source
# interpreted, the fallback (DESKGATE_PURE_RFB=1; tests/rfb/test_boundaries.py compares the two directly).
PURE_RFB_TESTS := tests/rfb/test_framing_server.py tests/rfb/test_proxy.py tests/rfb/test_clipboard.py

test: deps
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	DESKGATE_PURE_RFB=1 $(VENV)/bin/pytest -q -p no:cacheprovider $(PURE_RFB_TESTS)

# deploy/: hadolint on the Dockerfiles, docker-compose config, kubernetes-validate --strict on the manifests,
# promtool on the alert rules and their tests, config check on every example config (tests/test_deploy.py).
lint-deploy: deps
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/test_deploy.py \
		tests/functional/test_prometheus_functional.py::test_every_alert_has_a_passing_promtool_case

demo: deps
	$(VENV)/bin/deskgate demo

bench: deps
	$(VENV)/bin/python -m bench

# What watching costs: gateway CPU per live view and per wall tile, latency a live view adds (bench/live_view.py).
bench-live: deps
	$(VENV)/bin/python -m bench.live_view

# 100 sessions through `deskgate serve` to real Xvnc desktops for 10 minutes (bench/soak.py).
soak: deps
	$(VENV)/bin/python -m bench.soak

# Coverage-guided fuzzing of the RFB core (framers, proxy connection, and `boundaries`: the compiled framer
# against the interpreted one and the event framer) with atheris, the `fuzz` extra: each target for
# FUZZ_SECONDS. Corpora grow in var/fuzz/TARGET; an input that fails is saved as var/fuzz/TARGET-crash-* and fails the target (replay: python -m fuzz TARGET FILE).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := client_framer server_framer proxy boundaries
FUZZ_STAMP := $(VENV)/.deskgate-fuzz-installed

$(FUZZ_STAMP): setup.cfg pyproject.toml $(VENV_STAMP)
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -e '.[test,fuzz]'
	@touch $@

fuzz: deps $(FUZZ_STAMP)
	DESKGATE_FUZZ_CAMPAIGN=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/rfb/test_fuzz_families.py
	@for target in $(FUZZ_TARGETS); do \
		echo "deskgate: fuzzing $$target for $(FUZZ_SECONDS)s"; \
		$(VENV)/bin/python -m fuzz $$target -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=30; \
	done

# Translations: extract the marked texts (babel.cfg) into gateway/locale/deskgate.pot and merge them
# into each language's deskgate.po (new texts empty, changed ones fuzzy, removed ones dropped);
# then translate the empty and fuzzy entries of ja. tests/gateway/test_i18n.py checks the result.
MESSAGE_KEYWORDS := -k t -k tn:1,2 -k N_ -k say:2
messages: deps
	$(VENV)/bin/pybabel -q extract -F babel.cfg $(MESSAGE_KEYWORDS) --no-wrap --sort-by-file \
		--project deskgate --copyright-holder "deskgate" -o gateway/locale/deskgate.pot .
	$(VENV)/bin/pybabel -q update -i gateway/locale/deskgate.pot -d gateway/locale -D deskgate \
		--no-wrap --ignore-obsolete --ignore-pot-creation-date

# Build outputs and caches; keeps .venv, node_modules and var/ (demo users and recordings).
clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .hypothesis $(NOVNC_DIR) $(XTERM_DIR) $(ASCIINEMA_DIR)
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also the installed dependencies; the next target re-creates them.
distclean: clean
	rm -rf $(VENV) node_modules
