# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
N ?= 100000
# every optional integration is installed for the tests: their suites run in CI, never skip
EXTRAS := test,dagster,s3,report
TRIALS ?= 200

.PHONY: demo demo-dagster check test bench bench-report soak clean browser

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

# The report page at scale (not part of `make test`): report of a large cohort vs a build from a checkpoint.
bench-report: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.audit_report --n $(N)

demo: $(STAMP)
	rm -rf ledger-demo
	$(BIN)/cohort-ledger demo ledger-demo

# The Dagster example, headless: cohort A, then cohort B reusing A's gens (docs/dagster.md).
demo-dagster: $(STAMP)
	rm -rf dagster-demo
	$(BIN)/python -m examples.dagster_pipeline.demo dagster-demo

# The report page tests drive a real headless Chromium (Debian package); installed once, when missing.
# Without it (not root, no apt) they skip locally and fail under CI=true.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium) \
		|| echo "chromium could not be installed: the report page tests will skip (and fail under CI=true)"

# Static types: the library and the projections are fully annotated, checked with --strict.
check: $(STAMP)
	$(BIN)/python -m mypy --strict ledger projections

test: $(STAMP) browser check
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Crash soak (not part of `make test`): TRIALS SIGKILLs of a writer, every promise checked.
soak: $(STAMP)
	$(BIN)/python tests/soak.py --trials $(TRIALS)

clean:
	rm -rf $(VENV) ledger-demo dagster-demo bench-out
