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
