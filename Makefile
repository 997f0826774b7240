# Developer entry points. `make run` and `make test` work on a fresh Debian 12 machine:
# they install the Debian packages they need, build a virtualenv in .venv with the
# pinned versions from constraints.txt, and build the compiled core into it.

PYTHON ?= /usr/bin/python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --constraint constraints.txt
PO_FILES := $(wildcard bessai_edge/locale/*/LC_MESSAGES/*.po)
MO_FILES := $(PO_FILES:.po=.mo)
# Two workers: most tests wait on sockets and child processes. Tests that share a
# booted container carry @pytest.mark.xdist_group and run in one worker.
PYTEST_ARGS ?= -n 2 --dist loadgroup --timeout 900
CORE_SOURCES := $(wildcard native/*.c native/*.h bessai_edge/*.pyx bessai_edge/*.pxd)
# `make run`: its settings file and spool directory.
DEV_ENV ?= .cache/bessai.env
RUN_SPOOL_DIR := ./.cache/spool

.PHONY: all deps test-deps venv build run dev-env test bench deb fuzz clean

all: build

deps:
	tools/install-deps.sh build

test-deps:
	tools/install-deps.sh test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel Cython

%.mo: %.po
	msgfmt --check -o $@ $<

# The stamp is rebuilt when the core's sources, setup.py or the pins change.
$(VENV)/.installed: $(BIN)/python setup.py pyproject.toml constraints.txt $(CORE_SOURCES) $(MO_FILES)
	$(PIP) --editable '.[test]'
	touch $@

venv: deps $(VENV)/.installed

build: venv

# Run the gateway on the built-in simulator until Ctrl-C, printing a line per cycle.
run: venv dev-env
	mkdir -p $(RUN_SPOOL_DIR)
	$(BIN)/bessai run --env-file $(DEV_ENV)

# The shipped settings file with the spool under .cache and no health server, written
# as a file of its own: variables set on the command line would override the file and
# make bessai print a warning for each. An existing copy holds the user's edits, so a
# newer ENV_TEMPLATE goes to $(DEV_ENV).new beside it, with a line saying so.
ENV_TEMPLATE ?= packaging/bessai.env
DEV_ENV_SED := -e 's|^SPOOL_DIR=.*|SPOOL_DIR=$(RUN_SPOOL_DIR)|' -e 's|^HEALTH_LISTEN=.*|HEALTH_LISTEN=off|'

dev-env: $(DEV_ENV)

$(DEV_ENV): $(ENV_TEMPLATE)
	@mkdir -p $(dir $(DEV_ENV))
	@if [ -e $(DEV_ENV) ]; then \
		sed $(DEV_ENV_SED) $(ENV_TEMPLATE) > $(DEV_ENV).new && touch $(DEV_ENV) && \
		echo "make: $(ENV_TEMPLATE) changed; $(DEV_ENV) keeps your settings, and the new" \
			"ones are in $(DEV_ENV).new (compare: diff $(DEV_ENV) $(DEV_ENV).new)"; \
	else \
		sed $(DEV_ENV_SED) $(ENV_TEMPLATE) > $(DEV_ENV); \
	fi

# Everything the tests need (Debian packages, the virtualenv, the core) and then the tests.
test: test-deps venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

deb: test-deps
	packaging/build-deb.sh

fuzz: test-deps venv
	tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build dist .cache $(VENV) bessai_edge/_core.c bessai_edge/*.so $(MO_FILES)
