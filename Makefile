# The two commands of the README:  make run  ·  make test
# Both create .venv and install the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench tools clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

## make run: the whole platform on the embedded PostgreSQL (Ctrl-C stops it)
run: $(STAMP)
	$(PY) run.py

## make test: the test suite against a real PostgreSQL and a real headless Chromium
test: $(STAMP) tools
	$(PY) -m pytest

## Debian's chromium for the browser tests (test tools cannot download their own browser here),
## Debian's caddy, to run the deployment's Caddyfile in a test, and Debian's mosquitto, to run
## deploy/mosquitto/mosquitto.conf under the MQTT tests, and Debian's PostgreSQL (15 on Debian 12),
## an older server the backup of the embedded one (18) must restore into
tools:
	@command -v chromium >/dev/null 2>&1 && command -v caddy >/dev/null 2>&1 && \
	  { command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; } && \
	  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium, caddy, mosquitto and postgresql (an older server for the restore test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    chromium fonts-noto-color-emoji caddy mosquitto postgresql >/dev/null && \
	  { $$SUDO systemctl disable --now caddy mosquitto postgresql >/dev/null 2>&1 || true; }; }  # the tests start their own

## make bench: every benchmark (prints figures; see docs/performance.md)
bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pgdata-test artifacts
