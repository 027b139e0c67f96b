# Strongroom: `make run` starts the portal on a fresh machine; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test bench bench-memory bench-labs bench-load drills migrate seed clean-venv

$(VENV)/.runtime-deps: pyproject.toml scripts/pydeps.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) scripts/pydeps.py > $(VENV)/requirements-runtime.txt
	$(PIP) install -q -r $(VENV)/requirements-runtime.txt
	touch $@

$(VENV)/.test-deps: $(VENV)/.runtime-deps
	$(PY) scripts/pydeps.py test > $(VENV)/requirements-test.txt
	$(PIP) install -q -r $(VENV)/requirements-test.txt
	touch $@

# `make run` is lab mode (demo users, training labs, keys generated under var/); production starts
# differently (README: Production).
run seed: export STRONGROOM_MODE ?= lab

migrate: $(VENV)/.runtime-deps
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_lab

run: seed
	bash scripts/run.sh

test: $(VENV)/.test-deps
	bash scripts/test.sh

bench: $(VENV)/.test-deps
	$(PY) bench/engine.py $(BENCH_ARGS)

# Peak memory against the data size (issue 22): one backup per process at each size, and one long-lived
# process (a worker) backing up again and again; prints medians, ratios and verdicts. Not a test.
bench-memory: $(VENV)/.test-deps
	$(PY) bench/memory.py $(BENCH_ARGS)

# A class of 20 trainees on PostgreSQL (a throwaway database on BENCH_DATABASE_URL's server): creation time
# and the class page's server time mid-lab; prints figures, not a test.
bench-labs: $(VENV)/.runtime-deps
	$(PY) bench/labs_class.py $(BENCH_ARGS)

# A class under load (issue 22): 20 trainees and their instructor (locust, 127.0.0.1 only) on gunicorn, with
# two backups and a restore run by 2 Celery workers at nice 10 on Redis (LOAD_BROKER_URL, default db 9), in a
# throwaway database on BENCH_DATABASE_URL's server; prints throughput, p50/p95/p99 and errors. Not a test.
bench-load: $(VENV)/.test-deps
	$(PY) bench/load_class.py $(BENCH_ARGS)

# Fault drills (not CI): own redis-server and PostgreSQL on free ports, real workers; prints a table.
drills: $(VENV)/.runtime-deps
	$(PY) scripts/drills.py $(DRILLS_ARGS)

clean-venv:
	rm -rf $(VENV)
