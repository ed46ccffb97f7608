# Two entry points: `make demo` (the main job) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit bench simulate clean tools
# Real tools the tests drive (Alertmanager, amtool), from Debian when missing.
DEBIAN_TOOLS := prometheus-alertmanager
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# promtool and prometheus are unpacked from Debian's .deb (apt-get download + dpkg -x): no service start.
TOOLS_DIR := $(CURDIR)/.tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nbmon demo

simulate: $(STAMP)
	$(BIN)/nbmon simulate

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench dashboards deploy
	$(BIN)/ruff format --check monitor tests bench dashboards deploy

types: $(STAMP)
	$(BIN)/mypy --strict monitor dashboards

unit: $(STAMP)
	NBMON_TOOLS_DIR=$(TOOLS_DIR) $(BIN)/pytest

tools:
	@command -v prometheus-alertmanager >/dev/null 2>&1 || { \
	  echo "installing from Debian: $(DEBIAN_TOOLS)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_TOOLS) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_TOOLS) >/dev/null; }; }
	@test -x $(TOOLS_DIR)/usr/bin/promtool || { \
	  echo "unpacking promtool and prometheus from Debian's prometheus package into .tools/"; \
	  mkdir -p $(TOOLS_DIR)/deb && cd $(TOOLS_DIR)/deb && \
	  { apt-get download prometheus >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; } && \
	  dpkg -x prometheus_*.deb $(TOOLS_DIR) && rm -f prometheus_*.deb; }

test: tools lint types unit

# The OpenTelemetry google-genai comparison needs google-genai <3, hence a second virtualenv.
OTEL_VENV := bench/.venv-otel
OTEL_STAMP := $(OTEL_VENV)/.installed

$(OTEL_STAMP): bench/requirements-otel.txt
	$(PYTHON) -m venv $(OTEL_VENV)
	$(OTEL_VENV)/bin/pip install --quiet --upgrade pip
	$(OTEL_VENV)/bin/pip install --quiet -r bench/requirements-otel.txt
	touch $(OTEL_STAMP)

bench: $(STAMP) $(OTEL_STAMP)
	$(BIN)/python bench/bench_shim.py
	$(BIN)/python bench/bench_instructions.py
	$(BIN)/python bench/bench_daemon.py
	$(BIN)/python bench/bench_soak.py
	$(BIN)/python bench/bench_http.py
	$(OTEL_VENV)/bin/python bench/bench_otel_genai.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
