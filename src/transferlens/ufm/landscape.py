"""Landscape tools for the UFM: known critical points, Hessian certificates and saddle-escape runs.

Definitions (Ge et al. 2015; Sun, Qu & Wright 2015; used by Zhu et al. 2021 and Shen & Gu 2024,
arXiv:2407.10702): a critical point is a *strict saddle* if ``lambda_min(Hess f) < 0``; f is a strict-saddle
function with no spurious local minima if every critical point is a global minimiser or a strict saddle.

Known critical points (spec ``nc_landscape_dk.md`` section 3):

* the origin ``W = 0, H = 0, b = b0`` (closed-form spectrum in :func:`theory.origin_hessian_spectrum`);
* a global minimiser of the d' < d problem zero-padded to d: its Hessian is the d' Hessian plus (d - d')
  copies of ``[[lw I, G], [G^T, lh I]]`` with G the residual, so it is a strict saddle iff
  ``sigma_max(G) > sqrt(lw lh)`` (:func:`padded_block_prediction`).

lambda_min uses Lanczos on Hessian-vector products (``scipy.sparse.linalg.eigsh``, which='SA'); exact
counts of negative / zero eigenvalues use the dense Hessian when it has at most ``dense_limit`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from threadpoolctl import threadpool_limits

from ..errors import UsageError
from .objectives import UFMProblem
from .solver import Trajectory, gradient_descent, record_steps, solve_lbfgs
from .theory import ZERO_TOL, factor_block_eigenvalues, origin_bias


# ---------------------------------------------------------------------------------------------- points
def origin_point(problem: UFMProblem) -> np.ndarray:
    """The critical point W = 0, H = 0, b = b0."""
    K, d, N = problem.K, problem.d, problem.N
    return problem.pack(np.zeros((K, d)), np.zeros((d, N)), origin_bias(problem))


def embed(problem: UFMProblem, low: UFMProblem, x_low: np.ndarray) -> np.ndarray:
    """Zero-pad a point of the d' problem into the d problem: ``W = [W' 0]``, ``H = [H'; 0]``."""
    if low.d > problem.d or low.with_dim(problem.d) != problem:
        raise UsageError(f"cannot embed a d={low.d} point into a different or smaller problem (d={problem.d}).")
    W1, H1, b = low.unpack(x_low)
    W = np.zeros((problem.K, problem.d))
    H = np.zeros((problem.d, problem.N))
    W[:, : low.d] = W1
    H[: low.d] = H1
    return problem.pack(W, H, b if problem.has_bias else None)


def padded_optimum(problem: UFMProblem, d_low: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Global minimiser (L-BFGS) of the d_low problem and its zero-padding into ``problem``.

    Returns ``(x_padded, x_low)``.
    """
    if not 1 <= d_low < problem.d:
        raise UsageError(f"d_low must be in [1, d-1] = [1, {problem.d - 1}], got {d_low}.")
    low = problem.with_dim(d_low)
    x_low = solve_lbfgs(low, seed=seed).x
    return embed(problem, low, x_low), x_low


def padded_block_prediction(problem: UFMProblem, x_padded: np.ndarray, d_low: int) -> dict:
    """Predicted extra eigenvalues at a zero-padded point from the residual's singular values:
    ``(d - d_low)`` copies of the factor block; returns its min and its number of negative eigenvalues."""
    G = problem.residual(x_padded)
    sv = np.linalg.svd(G, compute_uv=False)
    ev = factor_block_eigenvalues(sv, problem.lambda_w, problem.lambda_h, problem.K, problem.N, problem.d - d_low)
    return {"lambda_min": float(ev[0]), "n_negative": int(np.sum(ev < -ZERO_TOL)),
            "residual_sv_max": float(sv[0])}


# ---------------------------------------------------------------------------------------------- certificates
@dataclass
class Certificate:
    """Second-order certificate of a point."""

    grad_norm: float
    lambda_min: float  # Lanczos
    lambda_min_dense: float | None
    n_negative: int | None  # eigenvalues < -zero_tol (dense only)
    n_zero: int | None  # |eigenvalue| <= zero_tol (dense only)
    n_params: int
    kind: str  # "strict saddle" | "local minimum (PSD)" | "not critical" | "degenerate (unresolved)"
    spectrum: np.ndarray | None = None

    def to_dict(self, with_spectrum: bool = False) -> dict:
        out = {
            "grad_norm": self.grad_norm, "lambda_min": self.lambda_min, "lambda_min_dense": self.lambda_min_dense,
            "n_negative": self.n_negative, "n_zero": self.n_zero, "n_params": self.n_params, "kind": self.kind,
        }
        if with_spectrum and self.spectrum is not None:
            out["spectrum"] = self.spectrum.tolist()
        return out


def lanczos_lambda_min(problem: UFMProblem, x: np.ndarray, tol: float = 1e-10, seed: int = 0) -> float:
    """Smallest Hessian eigenvalue by Lanczos (ARPACK, which='SA') on Hessian-vector products."""
    p = problem.n_params
    op = LinearOperator((p, p), matvec=problem.hessian_operator(x), dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(p)
    try:
        vals = eigsh(op, k=1, which="SA", tol=tol, v0=v0, maxiter=50 * p, ncv=min(p - 1, 40),
                     return_eigenvectors=False)
    except ArpackNoConvergence as exc:  # pragma: no cover - rare; use what converged
        vals = exc.eigenvalues
        if len(vals) == 0:
            return float("nan")
    return float(np.min(vals))


def certify(
    problem: UFMProblem,
    x: np.ndarray,
    grad_tol: float = 1e-8,
    zero_tol: float = ZERO_TOL,
    dense_limit: int = 3000,
    keep_spectrum: bool = True,
) -> Certificate:
    """Classify x: gradient norm, lambda_min (Lanczos), and with the dense Hessian (p <= dense_limit) the
    numbers of negative and zero eigenvalues. Eigenvalues with ``|lambda| <= zero_tol`` count as zero."""
    gn = float(np.linalg.norm(problem.grad(x)))
    lam = lanczos_lambda_min(problem, x)
    spec = None
    n_neg = n_zero = None
    lam_dense = None
    if problem.n_params <= dense_limit:
        # one BLAS thread: a few-thousand-row eigh gains nothing from threads and multi-threaded OpenBLAS
        # can be 100x slower on a shared, loaded machine (measured 8.7 s vs 0.05 s for p = 610)
        with threadpool_limits(limits=1):
            spec = np.linalg.eigvalsh(problem.hessian(x))
        lam_dense = float(spec[0])
        n_neg = int(np.sum(spec < -zero_tol))
        n_zero = int(np.sum(np.abs(spec) <= zero_tol))
    lam_best = lam_dense if lam_dense is not None else lam
    if gn > grad_tol:
        kind = "not critical"
    elif lam_best < -zero_tol:
        kind = "strict saddle"
    elif lam_best >= -zero_tol:
        kind = "local minimum (PSD)"
    else:  # pragma: no cover - NaN
        kind = "degenerate (unresolved)"
    return Certificate(gn, lam, lam_dense, n_neg, n_zero, problem.n_params, kind, spec if keep_spectrum else None)


# ---------------------------------------------------------------------------------------------- escape
@dataclass
class EscapeRun:
    eps: float
    lr: float
    steps_run: int
    escape_step: int | None  # first recorded step with f <= f_saddle - escape_drop
    reach_step: int | None  # first step with f - f_star <= reach_tol (None if not reached)
    final_value: float
    trajectory: Trajectory

    def to_dict(self) -> dict:
        return {"eps": self.eps, "lr": self.lr, "steps_run": self.steps_run, "escape_step": self.escape_step,
                "reach_step": self.reach_step, "final_value": self.final_value,
                "trajectory": self.trajectory.to_dict()}


def escape_run(
    problem: UFMProblem,
    x_saddle: np.ndarray,
    eps: float = 1e-6,
    lr: float = 0.5,
    steps: int = 2000,
    seed: int = 0,
    f_star: float | None = None,
    reach_tol: float = 1e-6,
    escape_drop: float = 1e-3,
    with_nc: bool = True,
) -> EscapeRun:
    """GD from ``x_saddle + eps * N(0, I)``. Escape time grows like log(1/eps) / (lr |lambda_min|)."""
    if eps < 0:
        raise UsageError(f"eps must be >= 0, got {eps}.")
    rng = np.random.default_rng(seed)
    x0 = np.asarray(x_saddle, dtype=np.float64) + eps * rng.standard_normal(problem.n_params)
    f0 = problem.value(np.asarray(x_saddle, dtype=np.float64))
    stop = None if f_star is None else f_star + reach_tol
    rec = record_steps(steps, 300) | set(range(0, steps + 1, max(1, steps // 300)))
    traj = gradient_descent(problem, x0, lr, steps, record=rec, with_nc=with_nc, stop_below=stop)
    vals = np.asarray(traj.values)
    esc = np.nonzero(vals <= f0 - escape_drop)[0]
    escape_step = int(traj.steps[esc[0]]) if esc.size else None
    reach = None
    if f_star is not None and vals[-1] <= f_star + reach_tol:
        reach = int(traj.steps[-1])
    return EscapeRun(eps, lr, int(traj.steps[-1]), escape_step, reach, float(vals[-1]), traj)
