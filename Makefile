# The two commands of the README, the quick one for the inner loop, and the
# pieces they are made of.
.PHONY: demo test check ctest fuzz bench setup

# Starts a local Synapse with the module and a sample school (SQLite, embedded store).
demo:
	scripts/demo.sh

# Runs every test: C (plain, sanitizers, valgrind, fuzz) and Python (binding, integration).
test:
	scripts/test.sh

# The inner loop, under 3 minutes and without Synapse or PostgreSQL: the C
# unit tests and tests/unit against the module built from this checkout.
check:
	scripts/check.sh

setup:
	scripts/setup.sh

ctest:
	$(MAKE) -C tests/c all-checks

fuzz:
	$(MAKE) -C tests/c fuzz

# The quick benchmarks (a few minutes); docs/benchmarks.md lists every one
# with its command, including the long runs (hot_path.py, reconcile_rate.py).
bench:
	VENV=$$(scripts/setup.sh) && scripts/install-module.sh "$$VENV" && \
	bench/callgrind_decide.sh && \
	"$$VENV/bin/python" bench/engine_vs_python.py && \
	"$$VENV/bin/python" bench/reconcile_rate.py --users 200 --baseline-seconds 10
