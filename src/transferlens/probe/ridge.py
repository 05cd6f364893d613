"""Closed-form multi-output ridge probe from streamed sufficient statistics.

The probe is the least-squares classifier on one-hot targets Y ∈ {0,1}^{N×K} with an intercept:

    min_{W,b} ‖Y − X W − 1 bᵀ‖²_F + α ‖W‖²_F
    W = (X̃ᵀ X̃ + α I)⁻¹ X̃ᵀ Ỹ,    b = ȳ − Wᵀ x̄,          X̃ = X − 1x̄ᵀ, Ỹ = Y − 1ȳᵀ

(the same estimator as ``sklearn.linear_model.Ridge(alpha, fit_intercept=True)`` on one-hot targets; the
predicted class is ``argmax(x W + b)``). Everything it needs comes from the per-class statistics that
:class:`~transferlens.metrics.stats.ClassStats` streams in float64: X̃ᵀX̃ = S_T (total scatter),
X̃ᵀỸ[:, c] = s_c − n_c x̄ (class sums s_c, counts n_c) and ȳ = n/N. Features are optionally standardised
with the training statistics (x − x̄)/σ, σ² = diag(S_T)/N, which turns S_T into S_T/(σσᵀ).

**Choosing α** (:func:`select_alpha`): one eigendecomposition S_T = V Λ Vᵀ of the fit split gives every
α on the grid for O(D²K): W_α = V diag(1/(Λ+α)) Vᵀ X̃ᵀỸ; validation scores of all α cost one projection
(X_val − x̄) V plus O(n_val·D·K) per α. The grid is relative to the mean eigenvalue tr(S_T)/D, so it is
scale-free. The chosen α maximises validation accuracy, ties broken by validation squared error.
With ``refit`` the probe is then re-solved (one Cholesky) on fit + validation statistics with
α·N_all/N_fit, which keeps the per-sample penalty α/N constant.

References: Hoerl & Kennard (1970); the closed form as a fast probe replaces the AdamW probe of Harun et
al. (NeurIPS 2024, github.com/yousuf907/Tunnel), which uses iterative probes only (spec §5.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from ..data.base import stratified_split
from ..errors import InputError
from ..metrics.stats import ClassStats, ClassSummary
from ..validation import as_float_matrix, as_labels, check_features_labels

#: default α grid, relative to the mean eigenvalue of the (standardised) scatter matrix.
DEFAULT_RELATIVE_ALPHAS = tuple(float(a) for a in np.logspace(-6, 3, 19))


@dataclass
class RidgeProbe:
    """A fitted linear probe: scores = ((x − mean) / scale) @ coef + intercept; class = argmax."""

    coef: np.ndarray  # (D, K)
    intercept: np.ndarray  # (K,)
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,), ones when not standardised
    alpha: float
    info: dict = field(default_factory=dict)

    def decision_function(self, x: Any) -> np.ndarray:
        xm = as_float_matrix(x)
        if xm.shape[1] != self.coef.shape[0]:
            raise InputError(f"features have {xm.shape[1]} columns but the probe was fitted on {self.coef.shape[0]}.")
        return ((xm - self.mean) / self.scale) @ self.coef + self.intercept

    def predict(self, x: Any) -> np.ndarray:
        return np.argmax(self.decision_function(x), axis=1)

    def score(self, x: Any, y: Any) -> float:
        """Top-1 accuracy on (x, y)."""
        lab = as_labels(y, n_samples=np.shape(x)[0])
        return float(np.mean(self.predict(x) == lab))

    @property
    def coef_original(self) -> np.ndarray:
        """Coefficients on the unstandardised features: coef / scale (D, K)."""
        return self.coef / self.scale[:, None]

    @property
    def intercept_original(self) -> np.ndarray:
        """Intercept on the unstandardised features: intercept − meanᵀ coef_original."""
        return self.intercept - self.mean @ self.coef_original


# ------------------------------------------------------------------------------------------ statistics
def _summary(stats: ClassStats | ClassSummary) -> ClassSummary:
    if isinstance(stats, ClassStats):
        return stats.compute()
    if isinstance(stats, ClassSummary):
        return stats
    raise InputError(f"expected ClassStats or ClassSummary, got {type(stats).__name__}.")


@dataclass(frozen=True)
class _Normal:
    """Centred (and optionally standardised) normal equations: G = X̃ᵀX̃, B = X̃ᵀỸ, ȳ, x̄, σ, N."""

    gram: np.ndarray
    cross: np.ndarray
    ybar: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    n: float


def _normal_equations(s: ClassSummary, standardize: bool) -> _Normal:
    n = float(s.counts.sum())
    if n < 2:
        raise InputError(f"a ridge probe needs at least 2 training samples, got {int(n)}.")
    mean = s.global_mean
    gram = s.total_scatter.copy()
    cross = s.sums.T - np.outer(mean, s.counts)  # X̃ᵀỸ = Σ_i (x_i − x̄) y_iᵀ
    scale = np.ones_like(mean)
    if standardize:
        var = np.diag(gram) / n
        scale = np.sqrt(var)
        scale[~(scale > 1e-12 * max(1.0, float(scale.max(initial=0.0))))] = 1.0  # constant features: leave as is
        gram /= np.outer(scale, scale)
        cross /= scale[:, None]
    return _Normal(gram=gram, cross=cross, ybar=s.counts / n, mean=mean, scale=scale, n=n)


def _solve(ne: _Normal, alpha: float) -> np.ndarray:
    a = ne.gram + alpha * np.eye(ne.gram.shape[0])
    try:
        return scipy.linalg.solve(a, ne.cross, assume_a="pos", check_finite=False)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        # α = 0 with a singular Gram matrix: the minimum-norm least-squares solution
        return np.linalg.lstsq(a, ne.cross, rcond=None)[0]


def _probe(ne: _Normal, coef: np.ndarray, alpha: float, info: dict) -> RidgeProbe:
    # scores use centred features (x − x̄)/σ, so the intercept in that parametrisation is ȳ
    return RidgeProbe(coef=coef, intercept=ne.ybar.copy(), mean=ne.mean, scale=ne.scale, alpha=float(alpha), info=info)


def fit_ridge_stats(stats: ClassStats | ClassSummary, alpha: float, *, standardize: bool = False) -> RidgeProbe:
    """Ridge probe with a fixed ``alpha`` from streamed class statistics (one D×D Cholesky solve)."""
    if not (np.isfinite(alpha) and alpha >= 0):
        raise InputError(f"alpha must be a finite number >= 0, got {alpha}.")
    ne = _normal_equations(_summary(stats), standardize)
    return _probe(ne, _solve(ne, float(alpha)), alpha, {"n_train": int(ne.n), "standardize": standardize})


def fit_ridge(x: Any, y: Any, alpha: float = 1.0, *, n_classes: int | None = None, standardize: bool = False,
              chunk_rows: int = 16384) -> RidgeProbe:
    """Ridge probe on in-memory (x, y) with a fixed ``alpha``, streamed through :class:`ClassStats`."""
    xm, lab, k = check_features_labels(x, y, n_classes=n_classes)
    stats = ClassStats(k, xm.shape[1], chunk_rows=chunk_rows).update(xm, lab)
    return fit_ridge_stats(stats, alpha, standardize=standardize)


# ------------------------------------------------------------------------------------------ α selection
@dataclass
class AlphaSelection:
    """Validation scores of every α on the grid (absolute α, accuracy, mean squared error)."""

    alphas: np.ndarray
    accuracy: np.ndarray
    mse: np.ndarray
    best: int

    @property
    def alpha(self) -> float:
        return float(self.alphas[self.best])

    def to_dict(self) -> dict:
        return {"alphas": self.alphas.tolist(), "val_accuracy": self.accuracy.tolist(), "val_mse": self.mse.tolist(),
                "alpha": self.alpha, "val_accuracy_best": float(self.accuracy[self.best])}


def select_alpha(
    fit_stats: ClassStats | ClassSummary,
    x_val: Any,
    y_val: Any,
    *,
    alphas: Any = None,
    relative: bool = True,
    standardize: bool = True,
) -> tuple[RidgeProbe, AlphaSelection]:
    """Pick α on a validation split from **one** eigendecomposition of the fit split's scatter matrix.

    ``alphas`` default to :data:`DEFAULT_RELATIVE_ALPHAS`; with ``relative`` they are multiplied by the
    mean eigenvalue tr(G)/D. Returns the probe fitted on the fit split at the chosen α and the scores.
    """
    s = _summary(fit_stats)
    ne = _normal_equations(s, standardize)
    xv = as_float_matrix(x_val, name="validation features")
    yv = as_labels(y_val, n_samples=xv.shape[0], name="validation labels")
    if xv.shape[1] != ne.gram.shape[0]:
        raise InputError(f"validation features have {xv.shape[1]} columns, the fit statistics {ne.gram.shape[0]}.")
    if yv.max() >= s.n_classes:
        raise InputError(f"validation label {int(yv.max())} is not a class of the fit split (K={s.n_classes}).")
    grid = np.asarray(DEFAULT_RELATIVE_ALPHAS if alphas is None else alphas, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise InputError("alphas must be a non-empty list of finite values >= 0.")
    lam, vec = np.linalg.eigh(ne.gram)
    lam = np.clip(lam, 0.0, None)
    if relative:
        grid = grid * (float(lam.mean()) if lam.mean() > 0 else 1.0)  # constant features: Λ = 0, keep α as given
    proj = ((xv - ne.mean) / ne.scale) @ vec  # (n_val, D)
    q = vec.T @ ne.cross  # (D, K)
    onehot = np.eye(s.n_classes)[yv]
    acc = np.empty(grid.size)
    mse = np.empty(grid.size)
    # never 0: with constant features (Λ = 0) and α = 0, 1/(Λ+α) would divide by zero (the probe then predicts from ȳ)
    floor = max(lam.max(initial=0.0) * lam.shape[0] * np.finfo(np.float64).eps, np.finfo(np.float64).tiny)
    for i, a in enumerate(grid):
        inv = np.where(lam + a > floor, 1.0 / np.maximum(lam + a, floor), 0.0)  # α=0: pseudo-inverse
        scores = (proj * inv) @ q + ne.ybar
        acc[i] = np.mean(np.argmax(scores, axis=1) == yv)
        mse[i] = np.mean((scores - onehot) ** 2)
    order = np.lexsort((mse, -acc))  # max accuracy, then min squared error
    best = int(order[0])
    inv = np.where(lam + grid[best] > floor, 1.0 / np.maximum(lam + grid[best], floor), 0.0)
    coef = vec @ (inv[:, None] * q)
    sel = AlphaSelection(alphas=grid, accuracy=acc, mse=mse, best=best)
    probe = _probe(ne, coef, grid[best], {"n_train": int(ne.n), "standardize": standardize, "selection": sel.to_dict()})
    return probe, sel


def fit_ridge_probe(
    x: Any,
    y: Any,
    *,
    n_classes: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    alphas: Any = None,
    relative: bool = True,
    standardize: bool = True,
    refit: bool = True,
    chunk_rows: int = 16384,
) -> tuple[RidgeProbe, ClassStats]:
    """The default probe: stream (x, y) into class statistics, choose α on a stratified validation split,
    refit on all of (x, y). Returns the probe and the full-data :class:`ClassStats` (reusable for NC1 and
    ranks, so the features are read once)."""
    xm, lab, k = check_features_labels(x, y, n_classes=n_classes, min_per_class=2)
    fit_idx, val_idx = stratified_split(lab, val_fraction, seed)
    fit_stats = ClassStats(k, xm.shape[1], chunk_rows=chunk_rows).update(xm[fit_idx], lab[fit_idx])
    val_stats = ClassStats(k, xm.shape[1], chunk_rows=chunk_rows).update(xm[val_idx], lab[val_idx])
    probe, sel = select_alpha(fit_stats, xm[val_idx], lab[val_idx], alphas=alphas, relative=relative, standardize=standardize)
    n_fit = float(fit_stats.counts.sum())
    full = ClassStats(k, xm.shape[1], chunk_rows=chunk_rows).merge(fit_stats).merge(val_stats)
    if refit:
        n_all = float(full.counts.sum())
        alpha = sel.alpha * n_all / n_fit
        refitted = fit_ridge_stats(full, alpha, standardize=standardize)
        refitted.info["selection"] = sel.to_dict()
        refitted.info["refit"] = True
        probe = refitted
    else:
        probe.info["refit"] = False
    return probe, full
