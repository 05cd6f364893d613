"""Exact optimal transport helpers (POT's network simplex, ``ot.emd``) for task-relatedness.

All costs are *unsquared* Euclidean distances, i.e. the transport values are Wasserstein-1 distances,
which is what the Lipschitz argument of the bound needs. Marginals are renormalised to sum to 1 in
float64 before calling the solver, and a solver that stops early (iteration cap) is reported.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot

__all__ = ["emd", "pairwise_euclidean", "wasserstein1", "class_conditional_w1"]

_NUM_ITER_MAX = 10_000_000
_PRUNE = 1e-12  # source weights below this fraction of the largest one are dropped (then renormalised)


def pairwise_euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``||x_i - y_j||_2`` for all pairs, float64, clipped at 0 before the square root."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.sqrt(np.maximum(sq, 0.0))


def emd(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Exact OT plan between histograms ``a`` and ``b`` for ``cost``; returns ``(plan, u, value)``.

    ``u`` is the (centred) dual potential of the source marginal: d value / d a_i = u_i (up to a
    constant, which is irrelevant on the simplex). Warns if the network simplex did not converge.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / a.sum()
    b = b / b.sum()
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    plan, log = ot.emd(a, b, cost, numItermax=_NUM_ITER_MAX, log=True)
    if log.get("warning"):
        warnings.warn(f"ot.emd did not converge cleanly: {log['warning']}", RuntimeWarning, stacklevel=2)
    return plan, np.asarray(log["u"], dtype=np.float64), float(log["cost"])


def wasserstein1(x: np.ndarray, y: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None) -> float:
    """Exact W1 between weighted point clouds ``(x, a)`` and ``(y, b)`` (uniform when ``None``)."""
    a = np.full(len(x), 1.0 / len(x)) if a is None else np.asarray(a, dtype=np.float64)
    b = np.full(len(y), 1.0 / len(y)) if b is None else np.asarray(b, dtype=np.float64)
    keep = a > _PRUNE * a.max()
    _, _, value = emd(a[keep], b, pairwise_euclidean(x[keep], y))
    return value


def class_conditional_w1(
    source: np.ndarray,
    source_class_weights: np.ndarray,
    target: np.ndarray,
    target_labels: np.ndarray,
    class_prior: np.ndarray,
) -> tuple[float, np.ndarray]:
    """``W = sum_k p_T(k) W1(S_k, T_k)`` with per-class exact OT.

    ``source_class_weights[k, i]`` is the (unnormalised) mass of source point ``i`` in the source
    class-conditional ``S_k`` (for task-relatedness: ``B[k, y_i] D[y_i] / n_{y_i}``, so ``S_k`` is the
    mixture of transformed reference classes that ``B`` sends to target class ``k``). ``T_k`` is the
    uniform empirical distribution of target class ``k``. Classes with zero prior are skipped; a class
    with target samples but no source mass gives ``inf``. Returns ``(W, per_class W1)``.
    """
    k_t = source_class_weights.shape[0]
    per_class = np.zeros(k_t)
    total = 0.0
    for k in range(k_t):
        tk = target[target_labels == k]
        if class_prior[k] <= 0 or len(tk) == 0:
            per_class[k] = np.nan
            continue
        w = source_class_weights[k]
        if not np.isfinite(w).all() or w.max() <= 0:
            per_class[k] = np.inf
            total = np.inf
            continue
        per_class[k] = wasserstein1(source, tk, a=w)
        total += class_prior[k] * per_class[k]
    return float(total), per_class
