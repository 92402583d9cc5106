# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev,celery
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
EXPERIMENT ?= breast_cancer
PORT ?= 8080

.PHONY: setup run test validate ui bench lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.12 (or another) for make")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==0.13.8"
	$(BIN)/uv pip install --python $(BIN)/python --constraint constraints.txt --editable ".[$(EXTRAS)]"
	touch $@

## Run one experiment end to end through Airflow (embedded SQLite, no server) and print its leaderboard.
run: setup
	$(BIN)/dag-factory run $(EXPERIMENT) $(ARGS)

## The whole test suite (what CI runs).
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

validate: setup
	$(BIN)/dag-factory validate

## The Airflow UI on http://localhost:$(PORT), with login on (see README).
ui: setup
	$(BIN)/dag-factory ui --port $(PORT)

## Benchmarks (see BENCHMARKS.md); BENCH=parse|overhead|data|install|parallel, default all.
bench: setup
	cd bench && ../$(BIN)/python run.py $(BENCH)

## Re-pin every dependency (after changing pyproject.toml).
lock: setup
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --no-header \
		--output-file constraints.txt

clean:
	rm -rf $(VENV) .airflow results/runs results/best
