# The README's two commands:
#   make demo   the main job: the full pipeline on a real clip (see README, "The demo")
#   make test   lint + the whole test suite
# Each sets up what it needs first (scripts/setup.sh is idempotent and fast the second time).

.PHONY: setup demo test lint clean

setup:
	bash scripts/setup.sh

demo: setup
	RANDOM_WEIGHTS=$(RANDOM_WEIGHTS) bash scripts/run_demo.sh $(DEMO_ARGS)

test: setup
	bash scripts/run_tests.sh $(PYTEST_ARGS)

lint: setup
	bash -c 'source scripts/env.sh && ruff check pam_ros test bench launch && ruff format --check pam_ros test bench launch'

clean:
	rm -rf build install log output
