# The two commands of the README. Each sets up what it needs on a fresh machine, then runs.
#   make demo   the main job: webhook-kit demo
#   make test   the whole test suite
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

# pytest exits 5 when it collected nothing; that must never count as a pass.
test: $(VENV)/.installed
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; exit $$status

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests harnesses benchmarks examples scripts
	$(VENV)/bin/ruff format --check src tests harnesses benchmarks examples scripts
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_serve.py
