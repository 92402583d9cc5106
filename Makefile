# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
EXPERIMENT ?= breast_cancer
PORT ?= 8080
MLFLOW_PORT ?= 5000
# The MLflow tracking server (for the tests and `make mlflow`) has a venv of its own: it pins
# pandas < 3, the factory pins pandas 3. Its version is the client's (mlflow-skinny in constraints.txt).
MLFLOW_VENV   := $(VENV)/mlflow-server
MLFLOW_SERVER := $(MLFLOW_VENV)/bin/mlflow
MLFLOW_VERSION = $(shell sed -n 's/^mlflow-skinny==//p' constraints.txt)

# Test files run in parallel, one file per worker (a file's fixtures are shared by its tests).
TEST_WORKERS ?= auto

.PHONY: setup run test test-fast validate ui mlflow bench lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.12 (or another) for make")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==0.13.8"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --constraint constraints.txt --editable ".[$(EXTRAS)]"
	rm -rf dag_factory_experiments.egg-info  # a build leftover: run from here, Airflow would load the plugin twice
	touch $@

## Run one experiment end to end through Airflow (embedded SQLite, no server) and print its leaderboard.
run: setup
	$(BIN)/dag-factory run $(EXPERIMENT) $(ARGS)

$(MLFLOW_SERVER): constraints-mlflow-server.txt | $(STAMP)
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv --without-pip $(MLFLOW_VENV)
	$(BIN)/uv pip install --python $(MLFLOW_VENV)/bin/python --compile-bytecode --requirement constraints-mlflow-server.txt
	touch $@

## The whole test suite (what CI runs), with the MLflow server its tracking tests start.
test: setup $(MLFLOW_SERVER)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## The inner loop: every test that does not start Airflow (a minute or two).
test-fast: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not airflow" $(PYTEST_ARGS)

## An MLflow tracking server and UI on http://localhost:$(MLFLOW_PORT) (SQLite and artifacts in .mlflow/).
mlflow: setup $(MLFLOW_SERVER)
	mkdir -p .mlflow
	$(MLFLOW_SERVER) server --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri sqlite:///$(CURDIR)/.mlflow/mlflow.db --artifacts-destination $(CURDIR)/.mlflow/artifacts

validate: setup
	$(BIN)/dag-factory validate

## The Airflow UI on http://localhost:$(PORT), with login on (see README).
ui: setup
	$(BIN)/dag-factory ui --port $(PORT)

## Benchmarks (see BENCHMARKS.md); BENCH=parse|overhead|data|install|parallel|integrations|spark, default all.
bench: setup
	cd bench && ../$(BIN)/python run.py $(BENCH)

## Re-pin every dependency (after changing pyproject.toml), and the MLflow server at the client's version.
lock: setup
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --no-header \
		--output-file constraints.txt
	echo "mlflow==$(MLFLOW_VERSION)" | $(BIN)/uv pip compile - --universal --python-version 3.11 --no-header \
		--output-file constraints-mlflow-server.txt

clean:
	rm -rf $(VENV) .airflow .mlflow results/runs results/best
