"""Solvers for the UFM: high-precision L-BFGS (scipy, float64) with an optional Newton polish, and plain
gradient descent that records a trajectory (loss, gradient norm and NC metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, minres

from ..errors import UsageError
from .objectives import UFMProblem
from .theory import nc_metrics


@dataclass
class SolveResult:
    x: np.ndarray
    value: float
    grad_norm: float
    iterations: int
    converged: bool
    message: str

    def to_dict(self) -> dict:
        return {
            "value": self.value, "grad_norm": self.grad_norm, "iterations": self.iterations,
            "converged": self.converged, "message": self.message,
        }


def newton_polish(problem: UFMProblem, x: np.ndarray, steps: int = 8, rtol: float = 1e-12) -> np.ndarray:
    """A few Newton steps ``x <- x - H^+ g`` (MINRES on Hessian-vector products, so the flat symmetry
    directions are harmless: g is orthogonal to them). A step is kept only if it lowers ||grad|| and does
    not raise f by more than 1e-12; meant for points already near a critical point."""
    x = np.array(x, dtype=np.float64)
    f, g = problem.value_and_grad(x)
    gn = np.linalg.norm(g)
    p = problem.n_params
    for _ in range(steps):
        op = LinearOperator((p, p), matvec=problem.hessian_operator(x), dtype=np.float64)
        step, _info = minres(op, -g, rtol=rtol, maxiter=5 * p)
        x_new = x + step
        f_new, g_new = problem.value_and_grad(x_new)
        gn_new = np.linalg.norm(g_new)
        if not (gn_new < gn and f_new <= f + 1e-12):
            break
        x, f, g, gn = x_new, f_new, g_new, gn_new
    return x


def solve_lbfgs(
    problem: UFMProblem,
    x0: np.ndarray | None = None,
    seed: int = 0,
    init_scale: float = 0.1,
    gtol: float = 1e-10,
    maxiter: int = 50_000,
    polish: bool = True,
) -> SolveResult:
    """Minimise f with L-BFGS-B (memory 50, ftol 0) and then polish with Newton-MINRES steps.

    L-BFGS stops when f no longer decreases in float64 (max|grad| ~ 1e-10 here); the polish drives the
    gradient to ~1e-14 so that Hessian certificates and symmetry counts are clean. Start: N(0, init_scale^2).
    """
    if gtol <= 0:
        raise UsageError(f"gtol must be > 0, got {gtol}.")
    x = problem.random_init(seed, init_scale) if x0 is None else np.array(x0, dtype=np.float64)
    res = minimize(
        problem.value_and_grad, x, jac=True, method="L-BFGS-B",
        options={"maxiter": maxiter, "maxfun": 2 * maxiter, "ftol": 0.0, "gtol": gtol, "maxcor": 50},
    )
    x, nit, msg = res.x, int(res.nit), str(res.message)
    if polish:
        x = newton_polish(problem, x)
    f, g = problem.value_and_grad(x)
    gmax = float(np.max(np.abs(g)))
    return SolveResult(x, f, float(np.linalg.norm(g)), nit, gmax < 10 * gtol, msg)


@dataclass
class Trajectory:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    nc: list[dict] = field(default_factory=list)
    x: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"steps": self.steps, "values": self.values, "grad_norms": self.grad_norms, "nc": self.nc}


def record_steps(total: int, n_points: int = 200) -> set[int]:
    """Roughly log-spaced step indices in [0, total] (always including both ends)."""
    pts = np.unique(np.round(np.geomspace(1, total + 1, n_points)).astype(int) - 1)
    return set(int(p) for p in pts) | {0, total}


def gradient_descent(
    problem: UFMProblem,
    x0: np.ndarray,
    lr: float,
    steps: int,
    record: set[int] | None = None,
    with_nc: bool = True,
    stop_below: float | None = None,
) -> Trajectory:
    """Plain GD ``x <- x - lr grad f(x)``; records f, ||grad|| (and NC metrics) at the steps in ``record``.

    ``stop_below``: stop early once ``f <= stop_below`` (the final step is always recorded).
    """
    if not (lr > 0 and np.isfinite(lr)):
        raise UsageError(f"learning rate must be a finite number > 0, got {lr}.")
    if steps < 0:
        raise UsageError(f"steps must be >= 0, got {steps}.")
    record = record_steps(steps) if record is None else record
    labels = problem.labels()
    x = np.array(x0, dtype=np.float64)
    traj = Trajectory()

    def log(t: int, f: float, g: np.ndarray) -> None:
        traj.steps.append(t)
        traj.values.append(f)
        traj.grad_norms.append(float(np.linalg.norm(g)))
        if with_nc:
            W, H, b = problem.unpack(x)
            traj.nc.append(nc_metrics(W, H, labels, b))

    for t in range(steps + 1):
        f, g = problem.value_and_grad(x)
        if not np.isfinite(f):
            raise UsageError(f"gradient descent diverged at step {t} (lr={lr}); use a smaller learning rate.")
        done = t == steps or (stop_below is not None and f <= stop_below)
        if t in record or done:
            log(t, f, g)
        if done:
            break
        x -= lr * g
    traj.x = x
    return traj
