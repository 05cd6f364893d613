"""Neural-collapse measures NC1-NC4 and the class-distance-normalised variance (CDNV).

Every measure takes either streamed statistics (:class:`~transferlens.metrics.stats.ClassStats` or its
:class:`~transferlens.metrics.stats.ClassSummary`) or in-memory ``(features, labels)`` arrays, and is
0 for a perfectly collapsed simplex-ETF configuration.

Notation (Papyan, Han & Donoho, PNAS 2020, "Prevalence of neural collapse during the terminal phase of
deep learning training"): K classes, N samples, class means μ_c, centre μ_G, M̃ = [μ_c − μ_G]_c (K×D),
classifier W (K×D) with rows w_c and bias b,

    Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ,        Σ_B = (1/K) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ.

**The 1/C convention.** NC1 is ``Tr(Σ_W Σ_B⁺)/K`` as in the paper and in ``tding1/Neural-Collapse``
(``validate_NC.py``) and ``rhubarbwu/neural-collapse`` (``covariance_ratio``). Many copies of the
Papyan/Han Colab compute ``Tr(Sw @ inv_Sb)`` *without* the 1/K: their numbers are K times ours.

**μ_G.** By default μ_G is the unweighted mean of the class means (``center="classes"``), so that Σ_B has
rank ≤ K−1 exactly and the rank-(K−1) cut of Σ_B⁺ is exact; the reference scripts use the sample mean
(``center="samples"``). Both coincide for balanced classes.

Deliberate differences from reference code (see the spec's list of their bugs): Σ_B⁺ is computed in
float64 from the SVD of M̃ with an explicit rank-(K−1) cut (``tding1`` uses float32 ``pinv`` at default
tolerance and reports negative NC1, its issue #3); NC1 is clipped at 0; NC4 uses argmax of the logits
(``felixsh/nc-toolbox`` uses argmin in one version); CDNV is the *mean* over pairs (not the coefficient of
variation as in ``nc-toolbox``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_float_matrix
from .stats import Center, ClassStats, ClassSummary, as_summary

__all__ = [
    "nc1",
    "nc2",
    "nc3",
    "nc3_wh",
    "nc4",
    "NCCAgreement",
    "cdnv",
    "cdnv_matrix",
    "geometric_collapse",
    "equinorm",
    "equiangularity",
    "max_angle",
    "etf_distance",
    "neural_collapse",
]


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
def _checked_summary(data: Any, labels: Any, n_classes: int | None, min_per_class: int = 2) -> ClassSummary:
    s = as_summary(data, labels, n_classes=n_classes)
    empty = np.flatnonzero(s.counts == 0)
    if empty.size:
        raise InputError(
            f"class(es) {empty[:10].tolist()} of 0..{s.n_classes - 1} have no sample; collapse measures need "
            "every class present (re-encode the labels or build ClassStats with the right n_classes)."
        )
    if s.n_classes < 2:
        raise InputError(f"collapse measures need at least 2 classes, got {s.n_classes}.")
    small = np.flatnonzero(s.counts < min_per_class)
    if small.size:
        raise InputError(
            f"class(es) {small[:10].tolist()} have fewer than {min_per_class} samples "
            f"(counts {s.counts[small[:10]].astype(int).tolist()}); within-class spread is undefined. "
            "Collect more samples or drop those classes."
        )
    tiny = np.flatnonzero(s.counts < 5)
    if tiny.size:
        warnings.warn(
            f"{tiny.size} class(es) have fewer than 5 samples (smallest: {int(s.counts.min())}); their means and "
            "spreads are noisy, so collapse measures are unreliable.",
            stacklevel=3,
        )
    if s.n_samples <= s.dim:
        warnings.warn(
            f"only {s.n_samples} samples for {s.dim} dimensions (N <= D): class means of even pure noise are far "
            "apart relative to the within-class spread along them, so collapse measures are biased towards "
            "collapse; compare only at equal N and D, or reduce D (e.g. PCA) first.",
            stacklevel=3,
        )
    return s


def _as_matrix(a: Any, name: str, shape0: int | None = None, shape1: int | None = None) -> np.ndarray:
    m = as_float_matrix(a, name=name)
    if shape0 is not None and m.shape[0] != shape0:
        raise InputError(f"{name} must have {shape0} rows (one per class), got shape {m.shape}.")
    if shape1 is not None and m.shape[1] != shape1:
        raise InputError(f"{name} must have {shape1} columns (the feature dimension), got shape {m.shape}.")
    return m


def _as_bias(b: Any, k: int) -> np.ndarray:
    if b is None:
        return np.zeros(k)
    if hasattr(b, "detach"):
        b = b.detach().cpu().numpy()
    arr = np.asarray(b, dtype=np.float64).reshape(-1)
    if arr.shape[0] != k or not np.isfinite(arr).all():
        raise InputError(f"bias must be a finite vector of length {k}, got shape {np.shape(b)}.")
    return arr


def _simplex_etf_target(k: int) -> np.ndarray:
    """(I − 11ᵀ/K)/√(K−1): the Gram matrix of a simplex ETF normalised to unit Frobenius norm."""
    return (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1)


def _offdiag_cosines(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1)
    if np.any(norms <= 0):
        raise InputError("a class vector has zero norm (two classes share a mean, or a classifier row is 0).")
    u = v / norms[:, None]
    g = u @ u.T
    iu = np.triu_indices(v.shape[0], k=1)
    return g[iu]


# ---------------------------------------------------------------------------------------------------------
# NC1
# ---------------------------------------------------------------------------------------------------------
def nc1(
    data: Any,
    labels: Any = None,
    *,
    n_classes: int | None = None,
    center: Center = "classes",
    rcond: float | None = None,
) -> float:
    """NC1 = Tr(Σ_W Σ_B⁺) / K  (within-class variability relative to between-class; 0 at collapse).

    Σ_B⁺ is the float64 pseudo-inverse restricted to the top r = min(K−1, D) eigenpairs of Σ_B (obtained
    from the SVD of M̃), further dropping eigenvalues below ``rcond·λ_max`` (default ``max(K,D)·1e-13``),
    so noise eigenvalues never enter and the result is never negative:
    NC1 = (1/K) Σ_{i≤r} v_iᵀ Σ_W v_i / λ_i. Invariant to rotations and global scalings of the features.
    A warning is issued when Σ_B has rank < K−1 (coinciding class means).

    Reference: Papyan, Han & Donoho, PNAS 2020, Sec. 3 (NC1); 1/K as in tding1/Neural-Collapse.

    >>> import numpy as np
    >>> nc1(np.repeat([[0., 0.], [4., 0.]], 5, axis=0), np.repeat([0, 1], 5))   # every sample on its class mean
    0.0
    """
    s = _checked_summary(data, labels, n_classes)
    k = s.n_classes
    m = s.centered_means(center)
    _, sv, vt = np.linalg.svd(m, full_matrices=False)
    lam = sv**2 / k  # eigenvalues of Σ_B, descending
    r = min(k - 1, lam.shape[0])
    tol = (max(k, s.dim) * 1e-13) if rcond is None else float(rcond)
    keep = int(np.count_nonzero(lam[:r] > tol * lam[0])) if lam[0] > 0 else 0
    if keep == 0:
        raise InputError("all class means coincide (Σ_B = 0); NC1 is undefined.")
    if keep < k - 1 and keep < s.dim:
        warnings.warn(
            f"Σ_B has numerical rank {keep} < K-1 = {k - 1}: some class means are (nearly) collinear or equal; "
            "NC1 ignores those directions.",
            stacklevel=2,
        )
    v = vt[:keep].T  # (D, r)
    quad = np.einsum("dr,dr->r", s.sigma_w @ v, v)
    return float(max(0.0, np.sum(np.clip(quad, 0.0, None) / lam[:keep]) / k))


# ---------------------------------------------------------------------------------------------------------
# NC2 primitives (on any K×D matrix of class vectors)
# ---------------------------------------------------------------------------------------------------------
def equinorm(vectors: Any) -> float:
    """Coefficient of variation of the row norms: std_c ‖v_c‖ / mean_c ‖v_c‖ (std with ddof=1, as the
    Papyan/Han Colab's ``torch.std``). 0 when all norms are equal (NC2, "equinorm")."""
    v = as_float_matrix(vectors, name="class vectors")
    if v.shape[0] < 2:
        raise InputError("equinorm needs at least 2 class vectors.")
    n = np.linalg.norm(v, axis=1)
    if n.mean() <= 0:
        raise InputError("all class vectors are zero; equinorm is undefined.")
    return float(n.std(ddof=1) / n.mean())


def equiangularity(vectors: Any) -> float:
    """std over pairs c<c' of cos∠(v_c, v_c') (population std, ddof=0). 0 when all angles are equal
    (NC2, "equiangularity", Papyan et al. Fig. 3). Needs K ≥ 3 for a non-trivial value."""
    v = as_float_matrix(vectors, name="class vectors")
    if v.shape[0] < 2:
        raise InputError("equiangularity needs at least 2 class vectors.")
    return float(np.std(_offdiag_cosines(v)))


def max_angle(vectors: Any) -> float:
    """mean over pairs c≠c' of |cos∠(v_c, v_c') + 1/(K−1)|: 0 iff all angles are the maximal
    equiangular ones of a simplex (NC2 "max-angle", the Colab's ``coherence``)."""
    v = as_float_matrix(vectors, name="class vectors")
    k = v.shape[0]
    if k < 2:
        raise InputError("max_angle needs at least 2 class vectors.")
    return float(np.mean(np.abs(_offdiag_cosines(v) + 1.0 / (k - 1))))


def etf_distance(vectors: Any) -> float:
    """‖ V Vᵀ/‖V Vᵀ‖_F − (I − 11ᵀ/K)/√(K−1) ‖_F: distance of the normalised Gram matrix to that of a
    simplex ETF (tding1 ``compute_ETF``, rhubarbwu ``simplex_etf_error``). 0 at NC2; at most 2."""
    v = as_float_matrix(vectors, name="class vectors")
    k = v.shape[0]
    if k < 2:
        raise InputError("etf_distance needs at least 2 class vectors.")
    g = v @ v.T
    nf = np.linalg.norm(g)
    if nf <= 0:
        raise InputError("all class vectors are zero; etf_distance is undefined.")
    return float(np.linalg.norm(g / nf - _simplex_etf_target(k)))


def nc2(
    data: Any,
    labels: Any = None,
    *,
    weight: Any = None,
    n_classes: int | None = None,
    center: Center = "classes",
) -> dict[str, float]:
    """NC2 (convergence to a simplex ETF) of the centred class means M̃, and of the classifier W if given.

    Keys: ``equinorm``, ``equiangularity``, ``max_angle``, ``etf_distance`` (on M̃) and the same with a
    ``_classifier`` suffix (on the rows of W, uncentred, as in the references). See the primitives for
    formulas. Reference: Papyan, Han & Donoho 2020, Sec. 3 (NC2) and Fig. 2-4.
    """
    s = _checked_summary(data, labels, n_classes)
    m = s.centered_means(center)
    out = {
        "equinorm": equinorm(m),
        "equiangularity": equiangularity(m),
        "max_angle": max_angle(m),
        "etf_distance": etf_distance(m),
    }
    if weight is not None:
        w = _as_matrix(weight, "weight", s.n_classes, s.dim)
        out.update(
            equinorm_classifier=equinorm(w),
            equiangularity_classifier=equiangularity(w),
            max_angle_classifier=max_angle(w),
            etf_distance_classifier=etf_distance(w),
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# NC3
# ---------------------------------------------------------------------------------------------------------
def nc3(
    weight: Any, data: Any, labels: Any = None, *, n_classes: int | None = None, center: Center = "classes"
) -> float:
    """NC3 (self-duality) = ‖ W/‖W‖_F − M̃/‖M̃‖_F ‖_F²  (squared, as the Papyan/Han Colab ``W_M_dist``).

    0 when the classifier rows are proportional to the centred class means. In [0, 4].
    Reference: Papyan, Han & Donoho 2020, Sec. 3 (NC3). ``felixsh/nc-toolbox`` omits the square.
    """
    s = _checked_summary(data, labels, n_classes)
    w = _as_matrix(weight, "weight", s.n_classes, s.dim)
    m = s.centered_means(center)
    nw, nm = np.linalg.norm(w), np.linalg.norm(m)
    if nw <= 0 or nm <= 0:
        raise InputError("classifier or centred class means are all zero; NC3 is undefined.")
    return float(np.linalg.norm(w / nw - m / nm) ** 2)


def nc3_wh(
    weight: Any, data: Any, labels: Any = None, *, n_classes: int | None = None, center: Center = "classes"
) -> float:
    """NC3, W-H form: ‖ W M̃ᵀ/‖W M̃ᵀ‖_F − (I − 11ᵀ/K)/√(K−1) ‖_F (tding1 ``compute_W_H_relation``,
    rhubarbwu ``self_duality_error``). 0 when W ∝ M̃ and M̃ is a simplex ETF."""
    s = _checked_summary(data, labels, n_classes)
    w = _as_matrix(weight, "weight", s.n_classes, s.dim)
    wh = w @ s.centered_means(center).T
    nf = np.linalg.norm(wh)
    if nf <= 0:
        raise InputError("W M̃ᵀ is zero; NC3 (W-H form) is undefined.")
    return float(np.linalg.norm(wh / nf - _simplex_etf_target(s.n_classes)))


# ---------------------------------------------------------------------------------------------------------
# NC4
# ---------------------------------------------------------------------------------------------------------
class NCCAgreement:
    """Streaming NC4: fraction of samples where the classifier and the nearest class centre agree.

    ``argmax_c (w_cᵀ h + b_c)`` vs ``argmin_c ‖h − μ_c‖`` with *uncentred* class means μ_c (the Colab's
    ``NCC_mismatch``; rhubarbwu ``clf_ncc_agreement``). Feed features batch-wise with :meth:`update`
    (a second pass after the class means are known), then :meth:`compute`.
    """

    def __init__(self, means: Any, weight: Any, bias: Any = None) -> None:
        self.means = as_float_matrix(means, name="class means")
        k, d = self.means.shape
        self.weight = _as_matrix(weight, "weight", k, d)
        self.bias = _as_bias(bias, k)
        self._half_sq = 0.5 * np.einsum("kd,kd->k", self.means, self.means)
        self._stacked = np.ascontiguousarray(np.vstack([self.weight, self.means]).T)  # (D, 2K)
        self.n = 0
        self.agree = 0

    def update(self, features: Any) -> "NCCAgreement":
        x = as_float_matrix(features, name="features")
        if x.shape[1] != self.means.shape[1]:
            raise InputError(f"features have {x.shape[1]} columns, the class means {self.means.shape[1]}.")
        k = self.means.shape[0]
        scores = x @ self._stacked  # one GEMM for logits and NCC scores
        clf = np.argmax(scores[:, :k] + self.bias, axis=1)
        ncc = np.argmax(scores[:, k:] - self._half_sq, axis=1)  # = argmin ‖x − μ_c‖²
        self.n += x.shape[0]
        self.agree += int(np.count_nonzero(clf == ncc))
        return self

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise InputError("no features were given to NCCAgreement.update().")
        a = self.agree / self.n
        return {"agreement": a, "mismatch": 1.0 - a, "n": float(self.n)}


def nc4(
    features: Any,
    weight: Any,
    bias: Any = None,
    *,
    labels: Any = None,
    means: Any = None,
    chunk_rows: int = 16384,
) -> float:
    """NC4 = 1 − (1/N) Σ_i 1[argmax_c(w_cᵀh_i + b_c) = argmin_c ‖h_i − μ_c‖]  (mismatch rate; 0 at NC4).

    Class means come from ``means`` or are computed from ``features`` and ``labels``. For streamed data use
    :class:`NCCAgreement`. Reference: Papyan, Han & Donoho 2020, Sec. 3 (NC4).
    """
    if means is None:
        if labels is None:
            raise InputError("nc4 needs either the class means or the labels to compute them.")
        means = _checked_summary(features, labels, None, min_per_class=1).means
    acc = NCCAgreement(means, weight, bias)
    n = len(features)
    for start in range(0, n, chunk_rows):
        acc.update(features[start : start + chunk_rows])
    return acc.compute()["mismatch"]


# ---------------------------------------------------------------------------------------------------------
# CDNV and geometric collapse
# ---------------------------------------------------------------------------------------------------------
def _pairwise_sq_dists(means: np.ndarray) -> np.ndarray:
    c = means - means.mean(axis=0, keepdims=True)  # centring reduces cancellation in the Gram form
    sq = np.einsum("kd,kd->k", c, c)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (c @ c.T)
    np.fill_diagonal(d2, 0.0)
    return np.clip(d2, 0.0, None)


def _pair_ratio_matrix(values: np.ndarray, means: np.ndarray) -> np.ndarray:
    d2 = _pairwise_sq_dists(means)
    num = (values[:, None] + values[None, :]) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / d2
    np.fill_diagonal(out, np.nan)
    return out


def _mean_over_pairs(mat: np.ndarray, what: str) -> float:
    iu = np.triu_indices(mat.shape[0], k=1)
    vals = mat[iu]
    if not np.all(np.isfinite(vals)):
        warnings.warn(f"two class means coincide: {what} is infinite.", stacklevel=3)
        return float("inf")
    return float(vals.mean())


def cdnv_matrix(data: Any, labels: Any = None, *, n_classes: int | None = None) -> np.ndarray:
    """Pairwise CDNV V(i,j) = (Var_i + Var_j) / (2‖μ_i − μ_j‖²), Var_c = (1/n_c)Σ_{i∈c}‖h_i − μ_c‖² (K×K,
    NaN diagonal). Reference: Galanti, György & Hutter, ICLR 2022, Def. 1."""
    s = _checked_summary(data, labels, n_classes)
    return _pair_ratio_matrix(s.class_variances, s.means)


def cdnv(data: Any, labels: Any = None, *, n_classes: int | None = None) -> float:
    """Class-distance-normalised variance averaged over the K(K−1)/2 class pairs (0 at collapse):

        NC(f) = Avg_{i<j} (Var_i + Var_j) / (2‖μ_i − μ_j‖²),   Var_c the *population* trace variance.

    Reference: Galanti, György & Hutter, "On the role of neural collapse in transfer learning", ICLR 2022
    (code: TomerGalanti/NeuralCollapseDepth ``analysis.py``; rhubarbwu ``variability_cdnv``). Note
    ``felixsh/nc-toolbox`` reports the std/mean of the pairwise values instead of their mean.
    """
    return _mean_over_pairs(cdnv_matrix(data, labels, n_classes=n_classes), "CDNV")


def geometric_collapse(class_gc: Any, means: Any) -> float:
    """Avg_{i<j} (GC_i + GC_j) / (2‖μ_i − μ_j‖²): the CDNV with Var_c replaced by the per-class geometric
    complexity GC(f, Q_c); an upper bound on CDNV (×Poincaré constant) in Munn, Dherin & Gonzalvo,
    NeurIPS 2024, Prop. 4.1. ``means`` may be a (K, D) array or class statistics."""
    if isinstance(means, (ClassStats, ClassSummary)):
        means = _checked_summary(means, None, None, min_per_class=1).means
    mu = as_float_matrix(means, name="class means")
    g = np.asarray(class_gc, dtype=np.float64).reshape(-1)
    if g.shape[0] != mu.shape[0] or not np.all(np.isfinite(g)) or np.any(g < 0):
        raise InputError(f"class_gc must be {mu.shape[0]} finite non-negative values, got shape {np.shape(class_gc)}.")
    if mu.shape[0] < 2:
        raise InputError("geometric collapse needs at least 2 classes.")
    return _mean_over_pairs(_pair_ratio_matrix(g, mu), "geometric collapse")


# ---------------------------------------------------------------------------------------------------------
# all at once
# ---------------------------------------------------------------------------------------------------------
def neural_collapse(
    data: Any,
    labels: Any = None,
    *,
    weight: Any = None,
    bias: Any = None,
    features: Any = None,
    n_classes: int | None = None,
    center: Center = "classes",
) -> dict[str, float]:
    """All collapse measures in one dict: ``nc1``, NC2 keys (see :func:`nc2`), ``cdnv``, and, with a
    classifier ``weight`` (K×D, optional ``bias``), ``nc3``, ``nc3_wh`` and NC2 of W; ``nc4`` needs the
    per-sample ``features`` too (taken from ``data`` when ``data`` is an array)."""
    if labels is not None and features is None:
        features = data
    s = _checked_summary(data, labels, n_classes)
    out: dict[str, float] = {"nc1": nc1(s, center=center)}
    out.update({f"nc2_{k}": v for k, v in nc2(s, weight=weight, center=center).items()})
    out["cdnv"] = cdnv(s)
    if weight is not None:
        out["nc3"] = nc3(weight, s, center=center)
        out["nc3_wh"] = nc3_wh(weight, s, center=center)
        if features is not None:
            out["nc4"] = nc4(features, weight, bias, means=s.means)
    out["n_samples"] = float(s.n_samples)
    out["n_classes"] = float(s.n_classes)
    return out

