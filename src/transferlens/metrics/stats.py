"""Streaming class statistics: the O(K·D + D²) building block of collapse, rank, LDA and ridge measures.

:class:`ClassStats` accumulates, in float64, for ``K`` classes and ``D`` features

* ``counts[c]``            = n_c (float64),
* ``sums[c]``              = Σ_{i: y_i=c} x_i,
* ``within_scatter``       S_W = Σ_i (x_i − μ_{y_i})(x_i − μ_{y_i})ᵀ       (D×D, *unnormalised*),
* ``class_sq_dev[c]``      = Σ_{i: y_i=c} ‖x_i − μ_c‖²                       (= tr of class c's scatter).

Batches and shards are combined with the pairwise (Chan, Golub & LeVeque 1979) update

    S_W(a ∪ b) = S_W(a) + S_W(b) + Σ_c (n_a,c n_b,c / n_c) (μ_b,c − μ_a,c)(μ_b,c − μ_a,c)ᵀ,

so deviations are always taken from class means (no ``E[xxᵀ] − μμᵀ`` cancellation): the streamed result
equals the in-memory float64 computation to rounding (≈1e-12 relative), for any batch split or shard merge.
Everything else (Σ_B, total covariance, Xᵀ X, Xᵀ Y) is derived exactly from these four arrays, see
:class:`ClassSummary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..validation import as_float_matrix, as_labels

Center = Literal["classes", "samples"]

#: rows converted to float64 at a time inside :meth:`ClassStats.update` (bounds temporary memory).
DEFAULT_CHUNK_ROWS = 16384


@dataclass(frozen=True)
class ClassSummary:
    """Immutable snapshot of :class:`ClassStats` with derived quantities (all float64).

    Conventions: ``N = Σ_c n_c``; Σ_W = S_W / N (pooled, population form, Papyan et al. 2020);
    Σ_B = (1/K) Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ with μ_G the unweighted mean of the class means by default
    (``center="classes"``; then Σ_B has rank ≤ K−1 exactly) or the sample mean (``center="samples"``,
    as in Papyan's and tding1's code; identical for balanced classes).
    """

    n_classes: int
    dim: int
    counts: np.ndarray  # (K,) float64
    sums: np.ndarray  # (K, D)
    within_scatter: np.ndarray  # (D, D) S_W, unnormalised
    class_sq_dev: np.ndarray  # (K,)

    # ---- basic ----------------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(round(float(self.counts.sum())))

    @property
    def present(self) -> np.ndarray:
        """Boolean mask of classes with at least one sample."""
        return self.counts > 0

    @property
    def means(self) -> np.ndarray:
        """Class means μ_c (K, D); rows of empty classes are NaN."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None]

    @property
    def global_mean(self) -> np.ndarray:
        """Sample mean μ = Σ_i x_i / N."""
        return self.sums.sum(axis=0) / self._n()

    @property
    def class_mean_average(self) -> np.ndarray:
        """Unweighted mean of the class means (1/K) Σ_c μ_c over present classes."""
        return self.means[self.present].mean(axis=0)

    def center_of(self, center: Center = "classes") -> np.ndarray:
        """μ_G used to centre the class means: ``"classes"`` (mean of means) or ``"samples"`` (sample mean)."""
        if center == "classes":
            return self.class_mean_average
        if center == "samples":
            return self.global_mean
        raise InputError(f"center must be 'classes' or 'samples', got {center!r}.")

    def centered_means(self, center: Center = "classes") -> np.ndarray:
        """M̃ = [μ_c − μ_G]_c (K, D)."""
        return self.means - self.center_of(center)[None, :]

    # ---- second moments -----------------------------------------------------------------------------
    @property
    def sigma_w(self) -> np.ndarray:
        """Pooled within-class covariance Σ_W = S_W / N (D×D)."""
        return self.within_scatter / self._n()

    def sigma_b(self, center: Center = "classes") -> np.ndarray:
        """Between-class covariance Σ_B = (1/K) M̃ᵀ M̃ (D×D), classes weighted equally."""
        m = self.centered_means(center)[self.present]
        return m.T @ m / m.shape[0]

    @property
    def between_scatter(self) -> np.ndarray:
        """Count-weighted between scatter S_B = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ, μ the sample mean."""
        p = self.present
        d = self.means[p] - self.global_mean[None, :]
        return (d * self.counts[p, None]).T @ d

    @property
    def total_scatter(self) -> np.ndarray:
        """S_T = Σ_i (x_i − μ)(x_i − μ)ᵀ = S_W + S_B."""
        return self.within_scatter + self.between_scatter

    def total_covariance(self, ddof: int = 0) -> np.ndarray:
        """Total covariance S_T / (N − ddof) (ddof=1 gives ``np.cov(X, rowvar=False)``)."""
        denom = self._n() - ddof
        if denom <= 0:
            raise InputError(f"need more than {ddof} samples for a covariance with ddof={ddof}.")
        return self.total_scatter / denom

    @property
    def class_variances(self) -> np.ndarray:
        """Var_c = (1/n_c) Σ_{i∈c} ‖x_i − μ_c‖² (trace of the class covariance, population form); NaN if empty."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.class_sq_dev / self.counts

    # ---- regression-style accessors ----------------------------------------------------------------
    @property
    def xtx(self) -> np.ndarray:
        """Uncentred Gram Xᵀ X = S_T + N μ μᵀ (D×D)."""
        mu = self.global_mean
        return self.total_scatter + self._n() * np.outer(mu, mu)

    @property
    def xty(self) -> np.ndarray:
        """Xᵀ Y for one-hot targets Y (D×K): the transposed class sums."""
        return self.sums.T.copy()

    @property
    def yty(self) -> np.ndarray:
        """Yᵀ Y = diag(n_c) for one-hot targets (K×K)."""
        return np.diag(self.counts)

    def _n(self) -> float:
        n = float(self.counts.sum())
        if n <= 0:
            raise InputError("no samples were accumulated; call update(features, labels) first.")
        return n


class ClassStats:
    """Streaming float64 class statistics in O(K·D + D²) memory.

    >>> st = ClassStats(n_classes=10, dim=512)
    >>> for xb, yb in loader:            # any batch split, any order
    ...     st.update(xb, yb)
    >>> s = st.compute()                  # ClassSummary: means, sigma_w, sigma_b(), total_covariance(), xtx ...

    Shards accumulated in other processes combine with :meth:`merge` (exact, order-independent up to
    rounding). Features may be numpy arrays or torch tensors of any float dtype; they are converted to
    float64 ``chunk_rows`` rows at a time.
    """

    def __init__(self, n_classes: int, dim: int, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        if int(n_classes) < 1 or int(dim) < 1:
            raise InputError(f"n_classes and dim must be positive, got n_classes={n_classes}, dim={dim}.")
        if int(chunk_rows) < 1:
            raise InputError(f"chunk_rows must be positive, got {chunk_rows}.")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.chunk_rows = int(chunk_rows)
        self.reset()

    # ---- state ------------------------------------------------------------------------------------------
    def reset(self) -> "ClassStats":
        """Forget everything accumulated so far."""
        k, d = self.n_classes, self.dim
        self.counts = np.zeros(k, dtype=np.float64)
        self.sums = np.zeros((k, d), dtype=np.float64)
        self.within_scatter = np.zeros((d, d), dtype=np.float64)
        self.class_sq_dev = np.zeros(k, dtype=np.float64)
        return self

    @property
    def n_samples(self) -> int:
        return int(round(float(self.counts.sum())))

    @classmethod
    def from_arrays(cls, features: Any, labels: Any, n_classes: int | None = None) -> "ClassStats":
        """One-shot construction from in-memory arrays (``n_classes`` defaults to ``max(labels)+1``)."""
        lab = as_labels(labels)
        if hasattr(features, "shape") and len(features.shape) == 2:
            dim = int(features.shape[1])
        else:
            dim = as_float_matrix(features).shape[1]
        k = int(lab.max()) + 1 if n_classes is None else int(n_classes)
        return cls(k, dim).update(features, lab)

    # ---- accumulation -------------------------------------------------------------------------------
    def update(self, features: Any, labels: Any) -> "ClassStats":
        """Add a batch ``features`` (n, D) with integer ``labels`` (n,) in ``0..K-1``. Returns ``self``."""
        if hasattr(features, "detach"):
            features = features.detach().cpu()
            if features.is_floating_point() and features.element_size() < 4:  # bfloat16/half: no numpy dtype
                features = features.float()
            features = features.numpy()
        feats = np.asarray(features)
        if feats.ndim != 2:
            raise InputError(
                f"features must be a 2-D array (n_samples, n_features), got shape {feats.shape}; "
                "flatten or pool each sample to a vector first."
            )
        if feats.shape[1] != self.dim:
            raise InputError(f"features have {feats.shape[1]} columns but this ClassStats was built for dim={self.dim}.")
        lab = as_labels(labels, n_samples=feats.shape[0])
        if lab.max() >= self.n_classes:
            raise InputError(
                f"label {int(lab.max())} is out of range for n_classes={self.n_classes}; "
                "build ClassStats with the total number of classes, or re-encode the labels."
            )
        for start in range(0, feats.shape[0], self.chunk_rows):
            x = as_float_matrix(feats[start : start + self.chunk_rows], name="features")
            self._add_chunk(x, lab[start : start + self.chunk_rows])
        return self

    def _add_chunk(self, x: np.ndarray, y: np.ndarray) -> None:
        order = np.argsort(y, kind="stable")
        ys = y[order]
        xs = x[order]
        cls_ids, starts = np.unique(ys, return_index=True)
        ends = np.append(starts[1:], ys.shape[0])
        nb = (ends - starts).astype(np.float64)
        # per-class segment sums (a loop over contiguous blocks is ~10x faster than reduceat on 2-D rows)
        sb = np.stack([xs[a:b].sum(axis=0) for a, b in zip(starts, ends)])  # (k_b, D)
        mb = sb / nb[:, None]
        xs -= np.repeat(mb, ends - starts, axis=0)  # centred on batch class means (in place)
        sw_b = xs.T @ xs  # numpy dispatches a.T @ a to BLAS syrk
        ssq_b = np.add.reduceat(np.einsum("ij,ij->i", xs, xs), starts)
        self._combine(cls_ids, nb, sb, sw_b, ssq_b)

    def _combine(self, ids: np.ndarray, nb: np.ndarray, sb: np.ndarray, sw_b: np.ndarray, ssq_b: np.ndarray) -> None:
        """Chan et al. pairwise update of the within statistics with a block (ids, counts, sums, S_W, ssq)."""
        na = self.counts[ids]
        both = na > 0
        if both.any():
            ia = ids[both]
            n_a, n_b = na[both], nb[both]
            delta = sb[both] / n_b[:, None] - self.sums[ia] / n_a[:, None]
            w = n_a * n_b / (n_a + n_b)
            self.within_scatter += (delta * w[:, None]).T @ delta
            self.class_sq_dev[ia] += w * np.einsum("ij,ij->i", delta, delta)
        self.within_scatter += sw_b
        self.class_sq_dev[ids] += ssq_b
        self.counts[ids] += nb
        self.sums[ids] += sb

    def merge(self, other: "ClassStats") -> "ClassStats":
        """Add the statistics of another shard (same K and D) into ``self``. Returns ``self``."""
        if not isinstance(other, ClassStats):
            raise InputError(f"can only merge another ClassStats, got {type(other).__name__}.")
        if (other.n_classes, other.dim) != (self.n_classes, self.dim):
            raise InputError(
                f"cannot merge ClassStats(n_classes={other.n_classes}, dim={other.dim}) into "
                f"ClassStats(n_classes={self.n_classes}, dim={self.dim}); shards must share K and D."
            )
        ids = np.flatnonzero(other.counts > 0)
        if ids.size:
            self._combine(ids, other.counts[ids], other.sums[ids], other.within_scatter.copy(), other.class_sq_dev[ids])
        return self

    def compute(self) -> ClassSummary:
        """Snapshot the accumulated statistics (copies) as a :class:`ClassSummary`."""
        if self.counts.sum() <= 0:
            raise InputError("no samples were accumulated; call update(features, labels) first.")
        sw = 0.5 * (self.within_scatter + self.within_scatter.T)  # exact symmetry
        return ClassSummary(
            n_classes=self.n_classes,
            dim=self.dim,
            counts=self.counts.copy(),
            sums=self.sums.copy(),
            within_scatter=sw,
            class_sq_dev=self.class_sq_dev.copy(),
        )

    def __repr__(self) -> str:
        return f"ClassStats(n_classes={self.n_classes}, dim={self.dim}, n_samples={self.n_samples})"


def as_summary(data: Any, labels: Any = None, *, n_classes: int | None = None) -> ClassSummary:
    """Return a :class:`ClassSummary` from a ClassStats, a ClassSummary, or (features, labels) arrays."""
    if isinstance(data, ClassSummary):
        if labels is not None:
            raise InputError("labels must not be given together with precomputed class statistics.")
        return data
    if isinstance(data, ClassStats):
        if labels is not None:
            raise InputError("labels must not be given together with precomputed class statistics.")
        return data.compute()
    if labels is None:
        raise InputError("pass labels with the feature array, or pass a ClassStats / ClassSummary.")
    return ClassStats.from_arrays(data, labels, n_classes=n_classes).compute()
