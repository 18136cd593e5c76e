# Two entry points for a fresh machine: `make up` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(CURDIR)/data

.PHONY: up test install test-deps lint unit e2e bench clean

$(BIN)/kubeling: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

install: $(BIN)/kubeling

up: install
	$(BIN)/kubeling up --data-dir $(DATA)

test-deps: install
	$(BIN)/pip install -q -e '.[test]'
	@if [ "$$(id -u)" = "0" ] && { ! command -v sqlite3 >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1 \
		|| ! command -v nft >/dev/null 2>&1 || [ ! -x /usr/lib/cni/bridge ] || ! command -v iptables >/dev/null 2>&1 \
		|| ! command -v nslookup >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1 || ! command -v conntrack >/dev/null 2>&1; }; then \
		apt-get update -qq && apt-get install -y -qq sqlite3 containernetworking-plugins iproute2 nftables \
		iptables conntrack dnsutils curl util-linux >/dev/null || true; fi

lint: test-deps
	$(BIN)/ruff check src tests bench

unit: test-deps
	$(BIN)/pytest -q tests/unit

e2e: test-deps
	$(BIN)/pytest -q tests/e2e

test: test-deps lint
	$(BIN)/pytest -q tests

bench: install
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) build src/*.egg-info
