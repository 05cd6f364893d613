#!/usr/bin/env bash
# The GPU checks of issue 19 in one command (`make test-gpu`), for a machine with a CUDA GPU:
#   1. the @pytest.mark.gpu tests (CPU/GPU agreement, every fine-tuning method on the GPU, half precisions);
#   2. benchmarks/bench_device.py on cuda at fp32, bf16 and fp16 (extraction images/s, fine-tuning steps/s and
#      the overhead against the bare model(x) loop), plus the CPU fp32 rows of the same machine for reference.
# Results: benchmarks/results/device/gpu-<UTC date>/ (pytest.txt, bench-cuda.jsonl, bench-cpu.jsonl, summary.md).
# Without a GPU it stops at once with one line. Uses .venv (created by scripts/setup.sh when missing).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
py=.venv/bin/python
[ -x "$py" ] || bash scripts/setup.sh || exit 1  # a fresh clone: set up first (skipped when .venv exists)
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "error: no CUDA GPU visible to PyTorch here; scripts/test_gpu.sh needs one (the gpu tests are skipped elsewhere)." >&2
  exit 1
fi
stamp="$(date -u +%Y%m%d-%H%M)"
out="benchmarks/results/device/gpu-$stamp"
mkdir -p "$out"
unset TRANSFERLENS_DEVICE TRANSFERLENS_PRECISION
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
  nproc; uptime; } > "$out/machine.txt"

rc=0
"$py" -m pytest tests/device -m gpu -q -rs 2>&1 | tee "$out/pytest.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
"$py" benchmarks/bench_device.py --device cuda --precision fp32,bf16,fp16 --n "${BENCH_N:-1024}" --batch "${BENCH_BATCH:-64}" \
  --ft-n "${BENCH_FT_N:-320}" --ft-batch "${BENCH_FT_BATCH:-32}" --repeats 3 --out "$out/bench-cuda.jsonl" 2>&1 | tee "$out/bench-cuda.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
OMP_NUM_THREADS="${CPU_THREADS:-$(nproc)}" "$py" benchmarks/bench_device.py --device cpu --precision fp32 --n 128 --batch 32 \
  --ft-n 40 --ft-batch 8 --repeats 2 --out "$out/bench-cpu.jsonl" 2>&1 | tee "$out/bench-cpu.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
{ echo "# GPU run $stamp (rc=$rc)"; cat "$out/machine.txt"; echo; tail -n 5 "$out/pytest.txt"; echo
  echo "| model | device | precision | task | ours | bare | overhead | notes |"; echo "|---|---|---|---|---:|---:|---:|---|"
  grep -h '^| ' "$out/bench-cuda.md" "$out/bench-cpu.md"; } > "$out/summary.md"
echo "results: $out/summary.md"
exit $rc
