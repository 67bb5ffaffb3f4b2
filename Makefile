# The course's two commands: `make book` and `make test`. Each creates .venv on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# nbgrader calls helper programs (alembic) by name: the environment's bin/ must be on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
STAMP := $(VENV)/.installed
# torch is pinned once, in pyproject.toml; it is installed first so that pip takes the local CPU
# build instead of resolving a CUDA build from the index.
TORCH_PIN := $(shell sed -n 's/^ *"\(torch==[^"]*\)".*/\1/p' pyproject.toml)
PIP_QUIET := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
ASSIGNMENTS := $(notdir $(wildcard solutions/ch*))

.PHONY: help venv book test test-fast test-gpu lint release lock clean grade bench bench-gpu bench-grading

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_PIN)" $(PIP_QUIET)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]" $(PIP_QUIET)
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the pinned dependencies (done by every other target)

book: $(STAMP) ## build the HTML book into _build/html (executes every page; warnings are errors)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going 2>&1 | grep -v "running over TCP without encryption" | tail -n 40
	@test -f _build/html/index.html && echo "book: open _build/html/index.html"

test: book ## build the book, then run every test: genlib, the book in a browser, notebooks, autograding
	$(PY) -m pytest tests solutions --nbval-lax -p no:cacheprovider

test-fast: $(STAMP) ## only the genlib tests (seconds)
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider

test-gpu: $(STAMP) ## only the tests marked gpu (needs CUDA)
	$(PY) -m pytest tests -m gpu -p no:cacheprovider

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check genlib tests benchmarks
	$(VENV)/bin/ruff format --check genlib tests benchmarks

release: $(STAMP) ## regenerate exercises/ from solutions/ with nbgrader
	for a in $(ASSIGNMENTS); do $(VENV)/bin/nbgrader generate_assignment $$a --force; done

grade: $(STAMP) ## autograde one assignment, then feedback, grades.csv, summary: make grade A=ch00_foundations [WORKERS=2]
	@test -n "$(A)" || { echo "usage: make grade A=<assignment> [WORKERS=2]"; exit 2; }
	$(VENV)/bin/course autograde $(A) --workers $(or $(WORKERS),2)
	$(VENV)/bin/course feedback $(A)
	$(VENV)/bin/course grades
	$(VENV)/bin/course summary $(A)

bench: $(STAMP) ## genlib vs SciPy / scikit-learn / torch: benchmarks/results/cpu.{json,md} (~5 min)
	$(PY) -m benchmarks.run --device cpu

bench-gpu: $(STAMP) ## the GPU cases (needs CUDA): benchmarks/results/cuda.{json,md}
	$(PY) -m benchmarks.run --device cuda

bench-grading: $(STAMP) ## time autograding 100 submissions with 1 and 2 workers
	$(PY) benchmarks/bench_autograde.py

lock: $(STAMP) ## rewrite constraints.txt from the installed environment
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v -iE '^(genlib|torch)=='; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean: ## remove the built book and caches (keeps .venv)
	rm -rf _build .pytest_cache
