# The two commands of the README's quick start. Both set everything up first (idempotent).
.PHONY: run test setup test-gpu

run:  ## set up, then run the main job on the embedded default
	@bash scripts/setup.sh
	@.venv/bin/transferlens assess

test: ## set up, then run the test suite
	@bash scripts/test.sh

setup:
	@bash scripts/setup.sh

test-gpu: ## on a CUDA machine: the gpu-marked tests + bench_device.py (cuda fp32/bf16/fp16), results in benchmarks/results/device/
	@bash scripts/test_gpu.sh
