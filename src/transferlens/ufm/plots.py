"""PNG plots of a UFM study (matplotlib Agg rendering through ``Figure``; no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from .run import UFMRunResult


class _Figures:
    """pyplot-free figure factory: ``matplotlib.figure.Figure`` renders PNG through Agg without touching
    the global pyplot state or needing a display."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, figsize=(7, 4)):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols)

    @staticmethod
    def close(fig) -> None:
        fig.clear()


def _fig() -> _Figures:
    return _Figures()


def _plain_log_labels(fig) -> None:
    """Use plain-text tick labels ('1e-08') on log axes: mathtext labels dominate the rendering time."""
    from matplotlib.ticker import LogFormatter, NullFormatter

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_formatter(LogFormatter(labelOnlyBase=True))
                axis.set_minor_formatter(NullFormatter())


def _save(fig, path: Path) -> Path:
    _plain_log_labels(fig)
    # fixed margins instead of bbox_inches="tight": that option lays out the (slow, mathtext) log-axis
    # labels twice
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.13, top=0.85, wspace=0.25)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path


def _pos(a) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in a], dtype=float)
    return np.where(a > 0, a, np.nan)


def write_plots(result: "UFMRunResult", out: Path) -> dict[str, Path]:
    plt = _fig()
    cfg = result.config
    title = f"UFM {cfg.loss.upper()}  K={cfg.K} d={cfg.d} n={cfg.n}  lw={cfg.lambda_w:g} lh={cfg.lambda_h:g} bias={cfg.bias}"
    paths: dict[str, Path] = {}

    # trajectory: loss gap and NC metrics
    tr = result.trajectory
    steps = np.asarray(tr["steps"]) + 1
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].loglog(steps, _pos(np.asarray(tr["values"]) - tr["f_ref"]), label="f - f*")
    ax[0].loglog(steps, _pos(tr["grad_norms"]), label="||grad f||")
    ax[0].set_xlabel("GD step + 1")
    ax[0].set_title(f"gradient descent (lr={tr['lr']:.3g})")
    ax[0].legend()
    for key in ("nc1", "nc2", "nc3"):
        ax[1].loglog(steps, _pos([m[key] for m in tr["nc"]]), label=key.upper())
    ax[1].set_xlabel("GD step + 1")
    ax[1].set_title("neural-collapse metrics")
    ax[1].legend()
    fig.suptitle(title, fontsize=9)
    paths["trajectory"] = _save(fig, out / "ufm_trajectory.png")
    plt.close(fig)

    # Hessian spectra
    if result.spectra:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, spec in result.spectra.items():
            spec = np.sort(np.asarray(spec))
            ax.plot(np.arange(spec.size), spec, ".", ms=3, label=f"{name} (min {spec[0]:.3g})")
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("eigenvalue index (sorted)")
        ax.set_ylabel("Hessian eigenvalue (symlog)")
        ax.set_title("Hessian spectra at critical points")
        ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        paths["spectra"] = _save(fig, out / "ufm_hessian_spectra.png")
        plt.close(fig)

    # d-sweep
    if result.sweep:
        d = np.array([r["d"] for r in result.sweep])
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for key in ("nc1", "nc2", "nc3"):
            ax[0].semilogy(d, np.maximum(_pos([r[key] for r in result.sweep]), 1e-16), "o-", label=key.upper())
        ax[0].axvline(cfg.K - 1, color="k", ls="--", lw=0.8, label="d = K-1")
        ax[0].set_xlabel("feature dimension d")
        ax[0].set_title("NC metrics at the L-BFGS solution")
        ax[0].legend()
        ax[1].plot(d, [r["value"] for r in result.sweep], "o-", label="L-BFGS f")
        th = [r["value_theory"] for r in result.sweep]
        if any(v is not None for v in th):
            ax[1].plot(d, [np.nan if v is None else v for v in th], "x", ms=9, label="closed form")
        ax[1].axvline(cfg.K - 1, color="k", ls="--", lw=0.8)
        ax[1].set_xlabel("feature dimension d")
        ax[1].set_title("minimum value")
        ax[1].legend()
        fig.suptitle(title, fontsize=9)
        paths["sweep"] = _save(fig, out / "ufm_d_sweep.png")
        plt.close(fig)

    # escape runs
    if result.escapes:
        fig, ax = plt.subplots(figsize=(7, 4))
        for e in result.escapes:
            v = np.asarray(e["values"]) - result.trajectory["f_ref"]
            ax.semilogy(np.asarray(e["steps"]), _pos(v), label=f"eps={e['eps']:g} (escape at {e['escape_step']})")
        ax.set_xlabel("GD step")
        ax.set_ylabel("f - f*")
        ax.set_title("escape from the origin (strict saddle) with noise eps")
        ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        paths["escape"] = _save(fig, out / "ufm_escape.png")
        plt.close(fig)
    return paths
