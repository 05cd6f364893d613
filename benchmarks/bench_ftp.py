"""Benchmark of the FTP optimizer (transferlens.finetune.optim.FTPAdamW).

Measures, on torchvision resnet18 (random init, 10 classes) at 32x32 with batch 64, CPU:

1. time per training step (forward + backward + step): FTP-AdamW vs torch.optim.AdamW (interleaved);
2. optimizer step alone: FTP-AdamW vs torch AdamW vs the official reference ``AdamP`` (github.com/GT-RIPL/FTP,
   ``util/FTP.py``), on identical gradients;
3. trajectory agreement with the reference (same model, same batches; float32 and float64);
4. memory: optimizer-state bytes, and the peak RSS of a separate process per optimizer.

The reference file is only read from a local copy and run side by side; it is never copied into this
repository.  Pass ``--reference /path/to/FTP.py``; by default the script looks for the fetched mirror
the git directory named by ``$FTP_REFERENCE_REPO`` (a local clone of GT-RIPL/FTP) and extracts ``util/FTP.py`` to a temporary directory with ``git show``.

Run:  .venv/bin/python benchmarks/bench_ftp.py [--steps 30] [--reference PATH]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from transferlens.finetune.optim import FTPAdamW

MIRROR = Path(os.environ.get("FTP_REFERENCE_REPO", "FTP-reference-repo-not-set"))
HEAD = ["fc.weight", "fc.bias"]
LR, WD = 1e-3, 0.05


def load_reference(path: str | None) -> tuple[Any, str]:
    """Import the official FTP.py from ``path`` or the local mirror; returns (module or None, note)."""
    if path is None:
        path = os.environ.get("FTP_REFERENCE")
    if path is None:
        if not MIRROR.exists():
            return None, f"reference not available: no --reference given and no mirror at {MIRROR}"
        tmp = Path(tempfile.mkdtemp(prefix="ftp_ref_"))
        src = subprocess.run(
            ["git", "-C", str(MIRROR), "show", "HEAD:util/FTP.py"], capture_output=True, text=True, check=False
        )
        if src.returncode != 0:
            return None, f"reference not available: git show failed: {src.stderr.strip()}"
        rev = subprocess.run(["git", "-C", str(MIRROR), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        (tmp / "FTP.py").write_text(src.stdout)
        path = str(tmp / "FTP.py")
        note = f"GT-RIPL/FTP util/FTP.py @ {rev.stdout.strip()} (local mirror, run unmodified)"
    else:
        note = f"reference from {path}"
    spec = importlib.util.spec_from_file_location("ftp_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod, note


def make_model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).to(dtype)


def batch(i: int, dtype: torch.dtype = torch.float32, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + i)
    return torch.randn(n, 3, 32, 32, generator=g, dtype=dtype), torch.randint(0, 10, (n,), generator=g)


def make_opt(kind: str, model: nn.Module, ref: Any) -> torch.optim.Optimizer:
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    if kind == "adamw_fused":
        return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD, fused=True)
    if kind == "ftp":
        return FTPAdamW(model, lr=LR, weight_decay=WD, exclude=HEAD)
    if kind == "ftp_fused":
        return FTPAdamW(model, lr=LR, weight_decay=WD, exclude=HEAD, fused=True)
    if kind == "ref":
        names = [n for n, _ in model.named_parameters()]
        group = {
            "params": list(model.parameters()),
            "pre": [p.detach().clone() for p in model.parameters()],
            "name": names,
        }
        return ref.AdamP([group], lr=LR, weight_decay=WD, exclude_set=set(HEAD))
    raise ValueError(kind)


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of tensors held by the optimizer beyond the parameters (state, anchors, FTP buffers)."""
    seen: set[int] = set()
    total = 0

    def add(t: Any) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
        elif isinstance(t, (list, tuple)):
            for x in t:
                add(x)
        elif isinstance(t, dict):
            for x in t.values():
                add(x)

    for st in opt.state.values():
        add(st)
    for g in opt.param_groups:
        add(g.get("pre", []))
    add(getattr(opt, "_ftp_anchor", {}))
    ftp = getattr(opt, "ftp", None)
    if ftp is not None:
        for buf in (ftp.prev_c, ftp.prev_scale, ftp.gamma_buff, ftp.first_m_gamma, ftp.second_m_gamma):
            add(buf)
    return total


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def bench_train_step(kinds: list[str], ref: Any, reps: int) -> dict[str, float]:
    models = {k: make_model() for k in kinds}
    opts = {k: make_opt(k, models[k], ref) for k in kinds}
    x, y = batch(0)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for k in kinds:  # warm-up (FTP hyper-gradient path needs >= 2 steps)
        for _ in range(3):
            train_step(models[k], opts[k], x, y)
    for _ in range(reps):
        for k in kinds:  # interleaved, so load changes hit every arm
            t0 = time.perf_counter()
            train_step(models[k], opts[k], x, y)
            times[k].append(time.perf_counter() - t0)
    return {k: (1e3 * statistics.median(v), 1e3 * min(v)) for k, v in times.items()}


def bench_opt_step(kinds: list[str], ref: Any, reps: int) -> dict[str, float]:
    base = make_model()
    x, y = batch(0)
    nn.functional.cross_entropy(base(x), y).backward()
    grads = [p.grad.detach().clone() for p in base.parameters()]
    models = {k: copy.deepcopy(base) for k in kinds}
    opts = {k: make_opt(k, models[k], ref) for k in kinds}
    for k in kinds:
        for p, g in zip(models[k].parameters(), grads):
            p.grad = g.clone()
        for _ in range(3):
            opts[k].step()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(reps):
        for k in kinds:
            t0 = time.perf_counter()
            opts[k].step()
            times[k].append(time.perf_counter() - t0)
    return {k: (1e3 * statistics.median(v), 1e3 * min(v)) for k, v in times.items()}


def trajectory(ref: Any, steps: int, dtype: torch.dtype, n: int = 16) -> dict[str, Any]:
    """Train the reference AdamP and FTPAdamW side by side on the same batches; max |Δθ| and |Δγ|.

    As context, the same for the two *base* optimizers (reference AdamP with every tensor excluded vs
    torch.optim.AdamW): their float32 rounding differs too, and Adam amplifies it where gradients are ~0.
    """
    m_ref, m_new = make_model(dtype), make_model(dtype)
    m_b0, m_b1 = make_model(dtype), make_model(dtype)
    o_ref, o_new = make_opt("ref", m_ref, ref), make_opt("ftp", m_new, ref)
    names = [k for k, _ in m_b0.named_parameters()]
    o_b0 = ref.AdamP(
        [{"params": list(m_b0.parameters()), "pre": [p.detach().clone() for p in m_b0.parameters()], "name": names}],
        lr=LR, weight_decay=WD, exclude_set=set(names),
    )
    o_b1 = torch.optim.AdamW(m_b1.parameters(), lr=LR, weight_decay=WD)
    ftp_diff, base_diff, gamma_diff = [], [], []
    for i in range(steps):
        x, y = batch(i, dtype, n=n)
        for m, o in ((m_ref, o_ref), (m_new, o_new), (m_b0, o_b0), (m_b1, o_b1)):
            train_step(m, o, x, y)
        ftp_diff.append(max((a - b).abs().max().item() for a, b in zip(m_ref.parameters(), m_new.parameters())))
        base_diff.append(max((a - b).abs().max().item() for a, b in zip(m_b0.parameters(), m_b1.parameters())))
        g_ref = [float(g) for g in o_ref.ftp.gamma_buff]
        g_new = [float(g) for g in o_new.gammas().values()]
        gamma_diff.append(max(abs(a - b) for a, b in zip(g_ref, g_new)))
    at = [s for s in (1, 2, 3, 5, 10, 20, 30, 50) if s <= steps]
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "batch": n,
        "steps": steps,
        "ftp_vs_ref_max_abs_param_diff": {s: float(f"{ftp_diff[s - 1]:.3g}") for s in at},
        "ftp_vs_ref_max_abs_gamma_diff": {s: float(f"{gamma_diff[s - 1]:.3g}") for s in at},
        "base_adamw_vs_ref_all_excluded_param_diff": {s: float(f"{base_diff[s - 1]:.3g}") for s in at},
        "gamma_range_final": [min(g_new), max(g_new)],
    }


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def rss_child(kind: str, ref_path: str | None, steps: int) -> None:
    """Peak RSS growth of a training run (Linux: VmHWM reset via /proc/self/clear_refs after set-up)."""
    ref, _ = load_reference(ref_path) if kind == "ref" else (None, "")
    model = make_model()
    x, y = batch(0)
    base = _proc_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter to the current RSS
    opt = make_opt(kind, model, ref)
    for _ in range(steps):
        train_step(model, opt, x, y)
    peak = _proc_status_kib("VmHWM")
    print(json.dumps({"peak_rss_growth_mib": round((peak - base) / 1024, 1),
                      "optimizer_state_mib": round(state_bytes(opt) / 2**20, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=None, help="path to the official util/FTP.py")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per arm")
    ap.add_argument("--traj-steps", type=int, default=20)
    ap.add_argument("--only", default="1234", help="which sections to run, e.g. 12 or 3")
    ap.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.reference, 5)
        return

    ref, note = load_reference(args.reference)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load avg {os.getloadavg()}")
    print(f"reference: {note}")
    n_params = sum(p.numel() for p in make_model().parameters())
    print(f"model: torchvision resnet18(num_classes=10), {n_params / 1e6:.2f} M params, input 64x3x32x32, "
          f"excluded: {HEAD}")

    kinds = ["adamw", "ftp", "adamw_fused", "ftp_fused"]
    if "1" in args.only:
        section_1(kinds, ref, args)
    if "2" in args.only:
        section_2(kinds, ref, args)
    if "3" in args.only and ref is not None:
        print("\n[3] trajectory vs reference AdamP (same init, same batches of", 16, "images)")
        for dtype, steps in ((torch.float64, args.traj_steps), (torch.float32, args.traj_steps)):
            print("  ", json.dumps(trajectory(ref, steps, dtype)), flush=True)
    if "4" in args.only:
        section_4(ref, args)


def section_1(kinds: list[str], ref: Any, args: argparse.Namespace) -> None:
    t = bench_train_step(kinds, ref, args.reps)
    print("\n[1] training step (fwd+bwd+step), ms over", args.reps, "interleaved reps: median / min")
    for k, (med, mn) in t.items():
        print(f"  {k:12s} {med:8.1f} / {mn:8.1f} ms")
    for a, b in (("ftp", "adamw"), ("ftp_fused", "adamw_fused")):
        print(f"  ratio {a} / {b}: median {t[a][0] / t[b][0]:.3f}, min {t[a][1] / t[b][1]:.3f}")


def section_2(kinds: list[str], ref: Any, args: argparse.Namespace) -> None:
    skinds = kinds + (["ref"] if ref is not None else [])
    s = bench_opt_step(skinds, ref, args.reps * 2)
    print("\n[2] optimizer.step() alone, ms over", args.reps * 2, "interleaved reps: median / min")
    for k, (med, mn) in s.items():
        print(f"  {k:12s} {med:8.2f} / {mn:8.2f} ms")
    if ref is not None:
        for k in ("ftp", "ftp_fused"):
            print(f"  speed-up of {k} vs reference AdamP: median {s['ref'][0] / s[k][0]:.2f}x, "
                  f"min {s['ref'][1] / s[k][1]:.2f}x")
    print(f"  FTP-AdamW step / torch AdamW step: median {s['ftp'][0] / s['adamw'][0]:.2f}x")


def section_4(ref: Any, args: argparse.Namespace) -> None:
    print("\n[4] memory: peak RSS growth over model+data during 5 training steps (fresh process each), "
          "and tensors owned by the optimizer (state, anchors, FTP buffers)")
    for k in ["adamw", "ftp"] + (["ref"] if ref is not None else []):
        cmd = [sys.executable, __file__, "--rss-child", k]
        if args.reference:
            cmd += ["--reference", args.reference]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(f"  {k:8s} {out}")


if __name__ == "__main__":
    main()
