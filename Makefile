# pantau: the two commands a newcomer needs.
#   make demo   set up, then run a complete stack on loopback with simulated sites
#   make test   set up, then run the whole test suite
# Set-up is idempotent: apt packages are installed only when missing (and only as root),
# the virtualenv is rebuilt only when pyproject.toml changes.

VENV        ?= .venv
PYTHON      ?= python3
PY          := $(VENV)/bin/python
APT_PKGS    := mosquitto mosquitto-clients victoria-metrics snmpd snmp prometheus iproute2 chromium systemd openssl prometheus-snmp-exporter prometheus-alertmanager influxdb rabbitmq-server nats-server
NEEDED_BINS := /usr/sbin/mosquitto /usr/bin/victoria-metrics /usr/sbin/snmpd /usr/bin/snmpget /usr/bin/promtool /usr/sbin/ip /usr/bin/chromium /usr/bin/systemd-analyze /usr/bin/openssl /usr/bin/amtool /usr/bin/prometheus-snmp-exporter /usr/bin/influxd /usr/lib/rabbitmq/bin/rabbitmq-server /usr/sbin/nats-server

CODE        := pantau agent collector
LINTED      := $(CODE) devstack tools tests bench

.PHONY: setup deps venv check test lint types demo bench clean

setup: deps venv

deps:
	@missing=""; for b in $(NEEDED_BINS); do [ -x $$b ] || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS) >/dev/null; \
	  else \
	    echo "missing:$$missing -- run: sudo apt-get install $(APT_PKGS)"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

types: venv
	$(VENV)/bin/mypy

# The quick loop while you work: lint, types and the in-process unit tests (no servers).
check: lint types
	$(PY) -m pytest -q -n 2 -m "not servers" $(PYTEST_ARGS)

# Everything, as CI runs it: lint, types, then the whole suite against real servers. Test
# modules run in 3 processes (a module's tests stay together, with its servers): most of the
# time goes to waiting on servers and timers, not CPU, so 3 fit on 2 cores (6 min vs 13).
TEST_JOBS   ?= 3
test: setup lint types
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

demo: setup
	$(PY) -m devstack.demo

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .demo
