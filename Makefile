# The two commands a newcomer needs: `make run` and `make test`. Each sets up .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sotong-installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv console run test unit lint bench synth validate outbox clean train-classifier evaluate-classifier

venv: $(STAMP)

$(STAMP): requirements/dev.txt requirements/runtime.txt requirements/train.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.txt -r requirements/train.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

## The staff console's chart library: chart.js from npm (the exact version in package.json),
## its UMD build copied into the console and checked against the committed SHA-256. Offline once
## node_modules holds it; nothing is fetched from a CDN at run time.
CONSOLE := layers/shared/python/sotong/web/console
CHART_JS := $(CONSOLE)/vendor/chart.umd.js
console: $(CHART_JS)

$(CHART_JS): package.json $(CONSOLE)/vendor.sha256
	@node -e 'let v; try { v = require("./node_modules/chart.js/package.json").version } catch {}; process.exit(v === require("./package.json").dependencies["chart.js"] ? 0 : 1)' || npm install --no-audit --no-fund
	mkdir -p $(dir $@)
	@node -e '$(VERIFY_JS)' node_modules/chart.js/dist/chart.umd.js $(CONSOLE)/vendor.sha256 $@
	@echo "$@: SHA-256 checked"

VERIFY_JS := const fs = require("fs"); const [src, sums, dest] = process.argv.slice(1); const want = fs.readFileSync(sums, "utf8").trim().split(/\s+/)[0]; const have = require("crypto").createHash("sha256").update(fs.readFileSync(src)).digest("hex"); if (have !== want) { console.error(src + ": SHA-256 " + have + ", expected " + want + " (" + sums + ")"); process.exit(1); } fs.copyFileSync(src, dest);

## Start the local stack with the demo hospital (Ctrl-C stops it; its data lives in memory).
## `make run PORT=8123` serves on another port.
PORT ?= 8000
run: venv console
	$(BIN)/python -m sotong_local --hospital hospitals/demo.yaml --port $(PORT)

## Lint, type-check and run the whole suite (unit, integration, infra, end-to-end).
test: venv console lint
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest tests/unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Print the benchmark table.
bench: venv
	$(BIN)/python -m bench

## Write CloudFormation templates for every hospital into cdk.out/ (no AWS account needed).
synth: venv console
	$(BIN)/python -m infra.app

## Retrain the complaint model on tests/data/classifier/train_*.jsonl (+ CORRECTIONS=file.jsonl).
train-classifier: venv
	$(BIN)/python -m sotong_local.train_classifier $(if $(CORRECTIONS),--corrections $(CORRECTIONS))
	$(BIN)/python -m sotong_local.classifier_baseline --write

## Print the classifier's figures on the validation split and the held-out set.
evaluate-classifier: venv
	$(BIN)/python -m sotong_local.classifier_baseline

validate: venv
	$(BIN)/sotong validate hospitals/*.yaml

outbox: venv
	$(BIN)/sotong outbox

clean:
	rm -rf $(VENV) cdk.out .build .pytest_cache .mypy_cache .ruff_cache
