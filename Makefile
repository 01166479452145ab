# The two commands of the README. Each sets up what it needs on a fresh machine, then runs.
#   make demo   the main job: webhook-kit demo
#   make test   the whole test suite, with its branch coverage
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/webhook-kit demo

# pytest exits 5 when it collected nothing; that must never count as a pass. The run is measured
# for branch coverage, the kit's own processes included (coverage run rather than pytest-cov, so
# the pytest plugin's import-time code counts too); after a passing run, the report fails below
# the floor (fail_under in pyproject.toml). Without a PostgreSQL server to test against
# (WEBHOOK_KIT_TEST_POSTGRES), that backend's tests skip, and the figure leaves it out, saying so.
test: $(VENV)/.installed
	@$(PY) -m coverage erase; $(PY) -m coverage run -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; \
	if [ $$status -ne 0 ]; then exit $$status; fi; \
	omit=; if [ -z "$$WEBHOOK_KIT_TEST_POSTGRES" ]; then \
		omit='--omit=*/webhook_kit/storage/postgres/*'; \
		echo "coverage: WEBHOOK_KIT_TEST_POSTGRES is not set, so the PostgreSQL backend" \
			"(storage/postgres/) was not tested and is left out of the figure" >&2; \
	fi; \
	$(PY) -m coverage combine --quiet && \
	$(PY) -m coverage report --skip-covered --skip-empty $${omit:+"$$omit"}

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests harnesses benchmarks examples scripts
	$(VENV)/bin/ruff format --check src tests harnesses benchmarks examples scripts
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_serve.py
