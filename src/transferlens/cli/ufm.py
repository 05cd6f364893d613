"""``transferlens ufm``: solve the unconstrained feature model, check it against the closed forms, certify
its critical points (strict saddles / optima) and write a record with plots.

The lead registers it with ``register(app)`` in ``cli/main.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError


def _parse_dims(text: str | None) -> tuple[int, ...] | None:
    """'1-12' or '5,9,10,20' -> tuple of ints."""
    if text is None or text.strip() == "":
        return None
    dims: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                dims.extend(range(lo, hi + 1))
            else:
                dims.append(int(part))
    except ValueError:
        raise UsageError(f"--sweep-dims must look like '1-12' or '5,9,10,20', got {text!r}.") from None
    if not dims or min(dims) < 1:
        raise UsageError(f"--sweep-dims must list feature dimensions >= 1, got {text!r}.")
    return tuple(sorted(set(dims)))


def ufm(
    loss: str = typer.Option("ce", "--loss", help="Loss: ce (cross-entropy) or mse."),
    K: int = typer.Option(10, "--K", "-K", help="Number of classes."),
    d: int = typer.Option(10, "--d", "-d", help="Feature dimension (the theory of Shen & Gu covers d = K)."),
    n: int = typer.Option(5, "--n", "-n", help="Samples per class."),
    lambda_w: float = typer.Option(5e-3, "--lambda-w", help="Weight decay on the classifier W."),
    lambda_h: float = typer.Option(5e-3, "--lambda-h", help="Weight decay on the features H."),
    lambda_b: float = typer.Option(0.0, "--lambda-b", help="Weight decay on the bias (only with --bias reg)."),
    bias: str = typer.Option("free", "--bias", help="Bias: none (b = 0), free (unregularised) or reg."),
    seed: int = typer.Option(0, "--seed", help="First random seed."),
    seeds: int = typer.Option(3, "--seeds", help="Number of random L-BFGS starts checked against theory."),
    gd_steps: int = typer.Option(3000, "--gd-steps", help="Gradient-descent steps of the plotted trajectory."),
    lr: Optional[float] = typer.Option(None, "--lr", help="GD step size (default 0.9/largest Hessian eigenvalue)."),
    d_low: Optional[int] = typer.Option(None, "--d-low", help="Dimension of the zero-padded saddle (default (K-1)//2)."),
    sweep_dims: Optional[str] = typer.Option(None, "--sweep-dims", help="d values of the sweep, e.g. '1-12' (default 1..K+2)."),
    out: Path = typer.Option(Path("ufm_out"), "--out", help="Output directory for ufm.json and the PNG plots."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots."),
) -> None:
    """Solve the UFM, compare with the closed forms, certify strict saddles and optima, write a record + plots."""
    from rich.console import Console
    from rich.table import Table

    from ..ufm.objectives import BIAS_MODES, LOSSES
    from ..ufm.run import UFMRunConfig, run_ufm, write_outputs

    loss = loss.lower()
    bias = bias.lower()
    if loss not in LOSSES:
        raise UsageError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    if bias not in BIAS_MODES:
        raise UsageError(f"--bias must be one of {', '.join(BIAS_MODES)}, got {bias!r}.")
    if bias == "reg" and lambda_b <= 0:
        raise UsageError("--bias reg needs --lambda-b > 0 (e.g. --lambda-b 5e-3).")
    if bias != "reg" and lambda_b != 0:
        raise UsageError(f"--lambda-b {lambda_b:g} is only used with --bias reg; add --bias reg or drop it.")
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}.")
    if K * d + d * n * K > 200_000:
        raise UsageError(
            f"K={K}, d={d}, n={n} gives {K * d + d * n * K} parameters; this command is meant for small UFMs "
            "(<= 200k parameters). Reduce --K, --d or --n."
        )
    cfg = UFMRunConfig(
        loss=loss, K=K, d=d, n=n, lambda_w=lambda_w, lambda_h=lambda_h, lambda_b=lambda_b, bias=bias, seed=seed,
        n_seeds=seeds, gd_steps=gd_steps, lr=lr, d_low=d_low, sweep_dims=_parse_dims(sweep_dims),
    )
    cfg.problem()  # validates sizes and lambdas before any work
    console = Console(stderr=True)
    with console.status("UFM study") as status:
        result = run_ufm(cfg, progress=lambda m: status.update(f"UFM study: {m}"))
    paths = write_outputs(result, out, plots=plots)

    th = result.theory or {}
    table = Table(title=f"UFM {loss.upper()}  K={K} d={d} n={n}  bias={bias}  ({result.seconds:.1f} s)")
    table.add_column("check")
    table.add_column("measured", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("ok", justify="center")
    for c in result.checks:
        m = c.measured
        e = c.expected
        fm = f"{m:.6g}" if isinstance(m, float) else str(m)
        fe = f"{e:.6g}" if isinstance(e, float) else str(e)
        table.add_row(c.name, fm, fe, "[green]yes[/]" if c.passed else "[red]NO[/]")
    out_console = Console()
    if th.get("covered"):
        out_console.print(
            f"closed form: f* = {th['value']:.9g}, ||W||^2 = {th['w_norm_sq']:.6g}, ||H||^2 = {th['h_norm_sq']:.6g},"
            f" geometry = {th['geometry']}"
        )
    else:
        out_console.print(f"closed form: not available ({th.get('reason', '')}); checks use certificates only")
    out_console.print(table)
    for name in ("origin", "padded", "optimum"):
        cert = result.certificates.get(name)
        if cert:
            out_console.print(
                f"{name:8s}: {cert['kind']}, |grad| = {cert['grad_norm']:.2e}, lambda_min = {cert['lambda_min']:.6g},"
                f" #neg = {cert['n_negative']}, #zero = {cert['n_zero']}"
            )
    verdict = "all checks passed" if result.all_passed else "SOME CHECKS FAILED"
    out_console.print(f"{verdict}; record: {paths['record']}")
    if not result.all_passed:
        raise typer.Exit(code=3)


def register(app: typer.Typer) -> None:
    """Add the ``ufm`` command to the TransferLens CLI."""
    app.command("ufm")(ufm)
