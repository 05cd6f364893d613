"""FTP under `torchrun --nproc_per_node 2` (gloo, CPU): identical γ on both ranks, equal to one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


def test_ftp_ddp_two_ranks_match_single_process(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(HERE / "ddp_ftp_worker.py"), str(tmp_path),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun did not finish within 120 s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert set(r0["gammas"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for name in r0["gamma_bits"]:
        assert torch.equal(r0["gamma_bits"][name], r1["gamma_bits"][name])  # bit-identical across ranks
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name])

    sys.path.insert(0, str(HERE))
    try:
        from ddp_ftp_worker import reference
    finally:
        sys.path.remove(str(HERE))
    params, gammas = reference()
    for name, g in gammas.items():
        assert r0["gammas"][name] == pytest.approx(g, rel=1e-5, abs=1e-7)
        assert g > 1e-3  # the radii actually grew, so the comparison is not trivial
    for name, p in params.items():
        torch.testing.assert_close(r0["params"][name], p, rtol=0, atol=1e-5)
