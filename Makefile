# The two commands of the README, and the pieces they are made of.
.PHONY: demo test ctest fuzz bench setup

# Starts a local Synapse with the module and a sample school (SQLite, embedded store).
demo:
	scripts/demo.sh

# Runs every test: C (plain, sanitizers, valgrind, fuzz) and Python (binding, integration).
test:
	scripts/test.sh

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
