# The two commands of the README's quick start. Both set everything up first (idempotent).
.PHONY: run test setup

run:  ## set up, then run the main job on the embedded default
	@bash scripts/setup.sh
	@.venv/bin/transferlens assess

test: ## set up, then run the test suite
	@bash scripts/test.sh

setup:
	@bash scripts/setup.sh
