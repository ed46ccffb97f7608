# Two entry points: `make demo` (the main job) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit bench simulate clean tools
# The real programs the tests drive, unpacked from Debian's packages into .tools/ (apt-get download + dpkg -x):
# nothing is installed on the host, nothing is started, no root is needed. prometheus brings promtool and
# prometheus; prometheus-alertmanager brings alertmanager (as usr/bin/prometheus-alertmanager) and amtool.
# redis-server (with redis-tools, libjemalloc2 and liblzf1) is the shared store of the fleet tests (issue #18).
TOOLS_DIR ?= $(CURDIR)/.tools
# When apt-get download cannot use the host's package lists (none yet, or not readable), it fetches its own into
# .tools/apt: apt-get update with these options writes there only, so it needs no root and leaves the host alone.
APT_LOCAL = -o Dir::State::Lists=$(TOOLS_DIR)/apt/lists -o Dir::Cache=$(TOOLS_DIR)/apt/cache -o Debug::NoLocking=true

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
	$(BIN)/mypy --strict monitor dashboards tests

# Line and branch coverage of monitor/; the floor is [tool.coverage.report] fail_under in pyproject.toml.
unit: $(STAMP)
	NBMON_TOOLS_DIR=$(TOOLS_DIR) $(BIN)/pytest --cov=monitor --cov-branch --cov-report=term-missing:skip-covered

tools: $(TOOLS_DIR)/usr/bin/promtool $(TOOLS_DIR)/usr/bin/prometheus-alertmanager $(TOOLS_DIR)/usr/bin/redis-server

$(TOOLS_DIR)/usr/bin/promtool:
	$(call unpack_deb,prometheus)

$(TOOLS_DIR)/usr/bin/prometheus-alertmanager:
	$(call unpack_deb,prometheus-alertmanager)

# Debian's redis-server is a link to redis-tools' binary, which needs libjemalloc2 and liblzf1: the tests run it
# with LD_LIBRARY_PATH=.tools/usr/lib/x86_64-linux-gnu (tests/support/redis.py). The link is unpacked last.
$(TOOLS_DIR)/usr/bin/redis-server:
	$(call unpack_deb,libjemalloc2)
	$(call unpack_deb,liblzf1)
	$(call unpack_deb,redis-tools)
	$(call unpack_deb,redis-server)

# $(call unpack_deb,PACKAGE): download Debian's PACKAGE (the host's lists, else .tools/apt's) and dpkg -x it.
define unpack_deb
	@echo "unpacking Debian's $(1) into $(TOOLS_DIR)/"
	@mkdir -p $(TOOLS_DIR)/deb $(TOOLS_DIR)/apt/lists/partial $(TOOLS_DIR)/apt/cache/archives/partial
	@cd $(TOOLS_DIR)/deb && rm -f $(1)_*.deb && \
	  { apt-get download $(1) >/dev/null 2>&1 || apt-get $(APT_LOCAL) download $(1) >/dev/null 2>&1 || \
	    { echo "  (fetching package lists into $(TOOLS_DIR)/apt)" && \
	      apt-get $(APT_LOCAL) update -qq >/dev/null && apt-get $(APT_LOCAL) download $(1) >/dev/null; }; } && \
	  dpkg -x $(1)_*.deb $(TOOLS_DIR) && rm -f $(1)_*.deb
endef

test: tools lint types unit

# The OpenTelemetry google-genai comparison needs google-genai <3, hence a second virtualenv.
OTEL_VENV := bench/.venv-otel
OTEL_STAMP := $(OTEL_VENV)/.installed

$(OTEL_STAMP): bench/requirements-otel.txt
	$(PYTHON) -m venv $(OTEL_VENV)
	$(OTEL_VENV)/bin/pip install --quiet --upgrade pip
	$(OTEL_VENV)/bin/pip install --quiet -r bench/requirements-otel.txt
	touch $(OTEL_STAMP)

# The proxy benchmark's LiteLLM side (and its uvicorn + Starlette + httpx baseline) runs in a third virtualenv:
# litellm[proxy] pins a `litellm-proxy` that PyPI does not serve, so the file lists the extra's packages itself.
LITELLM_VENV := bench/.venv-litellm
LITELLM_STAMP := $(LITELLM_VENV)/.installed

$(LITELLM_STAMP): bench/requirements-litellm.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/pip install --quiet -r bench/requirements-litellm.txt
	touch $(LITELLM_STAMP)

bench: $(STAMP) $(OTEL_STAMP) $(LITELLM_STAMP) $(TOOLS_DIR)/usr/bin/redis-server
	$(BIN)/python bench/bench_shim.py
	$(BIN)/python bench/bench_instructions.py
	$(BIN)/python bench/bench_daemon.py
	$(BIN)/python bench/bench_soak.py
	$(BIN)/python bench/bench_http.py
	$(BIN)/python bench/bench_pacer.py
	$(OTEL_VENV)/bin/python bench/bench_otel_genai.py
	$(BIN)/python bench/bench_proxy.py --litellm-venv $(LITELLM_VENV)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* build dist
