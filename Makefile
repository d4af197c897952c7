# Two commands for a fresh clone: `make run` and `make test`.
# .venv/ is built from requirements.lock and rebuilt only when the lock or pyproject.toml changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: run test server stack deploy worker receiver lint typecheck unit flow e2e bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/ -/'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)  ## backtest continuous training over the built-in demo stream
	$(BIN)/python flows/ct.py

server: $(STAMP)  ## a local Prefect server on 127.0.0.1:4200 that every ct command then reuses
	env $$($(BIN)/python -c 'from flows.cli.prefect_server import RECORDER_ENV as e; print(*(f"{k}={v}" for k, v in e.items()))') \
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

stack: $(STAMP)  ## server + deployments + worker + webhook receiver on 127.0.0.1 (Ctrl-C stops all)
	$(BIN)/python -m tests.support.devstack

deploy: $(STAMP)  ## deploy prefect.yaml to $$PREFECT_API_URL (work pool ct-process)
	$(BIN)/prefect work-pool create ct-process --type process --overwrite
	CT_HOME=$(CURDIR) CT_STATE_DIR=$${CT_STATE_DIR:-$(CURDIR)/.ct} \
	CT_SERVING_DIR=$${CT_SERVING_DIR:-$(CURDIR)/.ct/serving} CT_LANDING=$${CT_LANDING:-$(CURDIR)/.ct/landing} \
	$(BIN)/prefect --no-prompt deploy --all

worker: $(STAMP)  ## a process worker for the ct-process pool
	$(BIN)/prefect worker start --pool ct-process

receiver: $(STAMP)  ## the webhook receiver (needs CT_WEBHOOK_SECRET, CT_WEBHOOK_ALLOWED_ROOTS)
	$(BIN)/python -m webhooks.receiver

lint: $(STAMP)  ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy on flows/, tasks/, blocks/, webhooks/
	$(BIN)/mypy flows tasks blocks webhooks

unit: $(STAMP)  ## unit tests only: pure code, no servers, no processes
	$(BIN)/python -m pytest tests/unit -q -m unit

flow: $(STAMP)  ## flow tests: flows on a real Prefect server on 127.0.0.1
	$(BIN)/python -m pytest tests/flows -q -m flow -n auto --dist loadfile

e2e: $(STAMP)  ## end-to-end: the event-driven stack, deployments, worker, webhooks
	$(BIN)/python -m pytest tests/e2e -q -m e2e

test: lint typecheck $(STAMP)  ## lint, types, then every test (one worker per core, a file per worker)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: $(STAMP)  ## run every benchmark
	@for b in $(filter-out benchmarks/timing.py benchmarks/backtests.py,$(wildcard benchmarks/*.py)); do \
		echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:  ## remove the environment and local state
	rm -rf $(VENV) .ct
