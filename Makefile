# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 100000
# every optional integration is installed for the tests: their suites run in CI, never skip
EXTRAS := test,dagster,s3,report
TRIALS ?= 200

.PHONY: demo demo-dagster test bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[$(EXTRAS),bench]'
	touch $(BENCH_STAMP)

# The performance harness (not part of `make test`): figures to benchmarks/results/ and docs/benchmarks.md.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --n $(N)

demo: $(STAMP)
	rm -rf ledger-demo
	$(BIN)/cohort-ledger demo ledger-demo

# The Dagster example, headless: cohort A, then cohort B reusing A's gens (docs/dagster.md).
demo-dagster: $(STAMP)
	rm -rf dagster-demo
	$(BIN)/python -m examples.dagster_pipeline.demo dagster-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Crash soak (not part of `make test`): TRIALS SIGKILLs of a writer, every promise checked.
soak: $(STAMP)
	$(BIN)/python tests/soak.py --trials $(TRIALS)

clean:
	rm -rf $(VENV) ledger-demo dagster-demo bench-out
