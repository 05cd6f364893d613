"""Configuration and result types of task-relatedness (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ...errors import InputError
from ...validation import as_float_matrix, as_labels
from .head import _threads

__all__ = ["RelatednessConfig", "RelatednessTerms", "TransformedClassifier", "TaskRelatednessResult"]


# ------------------------------------------------------------------------------------------------
# configuration and results
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelatednessConfig:
    """Hyper-parameters (defaults discussed in the package docstring).

    n_iter, batch_size: alternating OT / Adam iterations and per-task batch size (paper: 1-2k, 500-2500).
    lr, lr_label, lr_prior: Adam learning rates of (A, Abar, b), of B and of D (paper: 1e-2 for A, Abar,
        b, B and 1e-4 / 1e-3 for D, with 1-2k iterations; larger rates here for B and D so that the
        label map and the prior settle within a few hundred iterations and before A can compensate
        for a wrong prior by distorting the features).
    label_warmup: fraction of ``n_iter`` over which B's learning rate ramps linearly up to ``lr_label``.
    label_cost: weight of the label cost *relative to the batch's mean feature distance* (paper: an
        absolute 1e6 / 1e8, which breaks the network simplex, POT issue #229).
    lambda_wd, lambda_pm, lambda_ic: weights of transport, prior-matching and inverse penalties.
    head_lipschitz: gradient-norm targets tau0 of the reference-head penalty; with several values one
        head is trained per value and the one with the smallest bound *on the fitting split* is kept.
    head_penalty, head_steps: penalty weight mu and Adam steps of the head retraining.
    retrain_head: retrain h_R with the penalty (initialised from ``reference_head`` if given); if
        False the given head is used as is and only its Lipschitz constant is measured.
    standardize: standardise each task's features with its own fit-split mean / std (as the paper).
    eval_fraction: stratified fraction of both tasks held out; the reported terms are measured on it.
        0 evaluates on the fitting data (optimistic).
    max_eval_points: per-task stratified subsample cap for the exact W and tau evaluation.
    max_dim: features with more dimensions are projected onto this many principal components of the
        pooled (reference + target) standardised fitting features before anything else (the learned
        classifier then acts on that projection). Bounds the O(d^3) cost of A and Abar; ``None`` keeps
        the full dimension (the paper's setting).
    num_threads: torch / BLAS threads while computing (restored afterwards); 1 by default because the
        problems are small and multi-threaded torch slows down by 10-70x on a shared, loaded CPU.
        ``None`` leaves the current settings.
    """

    n_iter: int = 300
    batch_size: int = 500
    lr: float = 1e-2
    lr_label: float = 1e-1
    label_warmup: float = 0.3
    lr_prior: float = 5e-2
    label_cost: float = 10.0
    lambda_wd: float = 2.0
    lambda_pm: float = 1.0
    lambda_ic: float = 1.0
    head_lipschitz: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    head_penalty: float = 1e3
    head_steps: int = 300
    retrain_head: bool = True
    standardize: bool = True
    eval_fraction: float = 0.25
    max_eval_points: int = 4000
    max_dim: int | None = 128
    num_threads: int | None = 1
    seed: int = 0


@dataclass(frozen=True)
class RelatednessTerms:
    """The three terms of the bound, measured on one pair of (reference, target) samples.

    ``bound = reference_loss + label_mismatch + distribution_mismatch`` upper-bounds the target
    cross-entropy of the transformed reference classifier (lower = more related tasks).
    """

    reference_loss: float  # L_w = sum_j D'_j * mean CE of h_R on reference class j (D' = D when B D = p_T)
    label_mismatch: float  # H = -sum_kj w_kj log B_kj, w_kj = p_T(k) B_kj D_j / (B D)_k (= H(B, D) when B D = p_T)
    distribution_mismatch: float  # tau * W
    wasserstein: float  # W1 (class-conditional, or marginal when label-free), standardised target units
    lipschitz: float  # tau: empirical max input-gradient norm of the transformed classifier's CE
    lipschitz_certified: float  # global upper bound sqrt(2) ||P W_h Abar||_2 on tau
    transformed_reference_loss: float  # CE of h_R''' on the transformed reference, weights w (<= L_w + H if Abar A = I)
    prior_mismatch: float  # ||p_T - B D||_1 (p_T = pseudo-label frequencies of h_R''' when label-free)
    target_cross_entropy: float | None  # CE of h_R''' on the target (None when label-free)
    target_accuracy: float | None
    label_free: bool
    n_reference: int
    n_target: int

    @property
    def bound(self) -> float:
        return self.reference_loss + self.label_mismatch + self.distribution_mismatch

    @property
    def bound_direct(self) -> float:
        """The paper's second form: CE of h_R''' on the transformed reference + tau W (no Abar A = I needed)."""
        return self.transformed_reference_loss + self.distribution_mismatch

    @property
    def bound_certified(self) -> float:
        """The bound with the certified (global) Lipschitz constant instead of the empirical one."""
        return self.reference_loss + self.label_mismatch + self.lipschitz_certified * self.wasserstein

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["bound"] = self.bound
        out["bound_certified"] = self.bound_certified
        out["bound_direct"] = self.bound_direct
        return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class TransformedClassifier:
    """``h_R'''(z_T) = B softmax(h_R(Abar (z_T - b)))`` plus the per-task standardisation.

    ``A, A_bar, b`` act on standardised features (``z~ = (z - mean) / scale``); ``affine_raw`` gives
    the map in the caller's feature coordinates.
    """

    ref_mean: np.ndarray
    ref_scale: np.ndarray
    tgt_mean: np.ndarray
    tgt_scale: np.ndarray
    head_weight: np.ndarray  # (C_R, d_R), acts on standardised reference features
    head_bias: np.ndarray  # (C_R,)
    A: np.ndarray  # (r_T, r_R)
    A_bar: np.ndarray  # (r_R, r_T)
    b: np.ndarray  # (r_T,)
    B: np.ndarray  # (K_T, C_R), column-stochastic: B[i, j] = P(y_T = i | y_R = j)
    D: np.ndarray  # (C_R,), class prior on the reference
    ref_basis: np.ndarray | None = None  # (d_R, r_R) orthonormal PCA basis when the dimension was reduced
    tgt_basis: np.ndarray | None = None  # (d_T, r_T)

    def std_reference(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.ref_mean) / self.ref_scale
        return z if self.ref_basis is None else z @ self.ref_basis

    def std_target(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.tgt_mean) / self.tgt_scale
        return z if self.tgt_basis is None else z @ self.tgt_basis

    def proba_std(self, z_t: np.ndarray) -> np.ndarray:
        """Target-class probabilities for standardised target features."""
        p = _softmax(((z_t - self.b) @ self.A_bar.T) @ self.head_weight.T + self.head_bias)
        return p @ self.B.T

    def predict_proba(self, target_features: Any) -> np.ndarray:
        """``(N, K_T)`` target-class probabilities of the transformed reference classifier."""
        x = as_float_matrix(target_features, name="target features")
        if x.shape[1] != self.tgt_mean.shape[0]:
            raise InputError(
                f"target features have {x.shape[1]} dimensions, the fitted map expects {self.tgt_mean.shape[0]}."
            )
        return self.proba_std(self.std_target(x))

    def transform_reference(self, reference_features: Any) -> np.ndarray:
        """Map reference features into the target feature space: ``A_raw z + b_raw``."""
        x = as_float_matrix(reference_features, name="reference features")
        if x.shape[1] != self.ref_mean.shape[0]:
            raise InputError(
                f"reference features have {x.shape[1]} dimensions, the fitted map expects {self.ref_mean.shape[0]}."
            )
        moved = self.std_reference(x) @ self.A.T + self.b
        if self.tgt_basis is not None:
            moved = moved @ self.tgt_basis.T
        return self.tgt_mean + self.tgt_scale * moved

    @property
    def affine_raw(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A_raw, b_raw)`` with ``z_T ~= A_raw z_R + b_raw`` in unstandardised coordinates."""
        a_std, b_std = self.A, self.b
        if self.ref_basis is not None:
            a_std = a_std @ self.ref_basis.T
        if self.tgt_basis is not None:
            a_std, b_std = self.tgt_basis @ a_std, self.tgt_basis @ b_std
        a_raw = (self.tgt_scale[:, None] * a_std) / self.ref_scale[None, :]
        b_raw = self.tgt_mean + self.tgt_scale * (b_std - a_std @ (self.ref_mean / self.ref_scale))
        return a_raw, b_raw


@dataclass(frozen=True, eq=False)
class TaskRelatednessResult:
    """Outcome of :func:`task_relatedness`. Lower ``bound`` = more related (it bounds a loss)."""

    terms: RelatednessTerms  # measured on the held-out split (or the fitting data if eval_fraction=0)
    classifier: TransformedClassifier
    head_lipschitz: float | None  # the selected tau0 of the head penalty (None: head used as given)
    head_candidates: tuple[tuple[float, float], ...]  # (tau0, bound on the fitting split)
    history: dict[str, np.ndarray]
    warnings: tuple[str, ...]
    seconds: float
    config: RelatednessConfig
    higher_is_better: bool = field(default=False, init=False)

    @property
    def bound(self) -> float:
        return self.terms.bound

    @property
    def A(self) -> np.ndarray:
        """Learned affine map in raw coordinates (``z_T ~= A z_R + b``)."""
        return self.classifier.affine_raw[0]

    @property
    def b(self) -> np.ndarray:
        return self.classifier.affine_raw[1]

    @property
    def B(self) -> np.ndarray:
        return self.classifier.B

    @property
    def D(self) -> np.ndarray:
        return self.classifier.D

    def as_record(self) -> dict[str, Any]:
        """JSON-serialisable summary (terms, learned B and D, selected head, timings, warnings)."""
        return {
            "score": "task_relatedness",
            "higher_is_better": self.higher_is_better,
            "label_free": self.terms.label_free,
            **self.terms.as_dict(),
            "B": self.B.tolist(),
            "D": self.D.tolist(),
            "head_lipschitz": self.head_lipschitz,
            "head_candidates": [list(c) for c in self.head_candidates],
            "seconds": self.seconds,
            "warnings": list(self.warnings),
        }

    def evaluate(
        self,
        reference_features: Any,
        reference_labels: Any,
        target_features: Any,
        target_labels: Any | None = None,
    ) -> RelatednessTerms:
        """Re-measure the three terms with the fitted transforms frozen (e.g. on held-out data).

        Classes may be missing from these samples (their prior mass goes to the present ones).
        """
        clf = self.classifier
        k_r, d_r = clf.head_weight.shape[0], clf.ref_mean.shape[0]
        k_t = clf.B.shape[0]
        xr = as_float_matrix(reference_features, name="reference features")
        yr = as_labels(reference_labels, n_samples=xr.shape[0], name="reference labels")
        if yr.max() >= k_r:
            raise InputError(f"reference labels must be < {k_r} (the fitted number of reference classes).")
        _check_dim(xr, d_r, "reference")
        xt = as_float_matrix(target_features, name="target features")
        yt = None
        if target_labels is not None:
            yt = as_labels(target_labels, n_samples=xt.shape[0], name="target labels")
            if yt.max() >= k_t:
                raise InputError(f"target labels must be < {k_t} (the fitted number of target classes).")
        _check_dim(xt, clf.tgt_mean.shape[0], "target")
        rng = np.random.default_rng(self.config.seed)
        from .terms import measure_terms  # local: terms imports this module's types

        with _threads(self.config.num_threads):
            return measure_terms(
                clf, clf.std_reference(xr), yr, clf.std_target(xt), yt, self.config.max_eval_points, rng
            )


def _check_dim(x: np.ndarray, d: int, which: str) -> None:
    if x.shape[1] != d:
        raise InputError(f"{which} features have {x.shape[1]} dimensions, expected {d} (as when fitted).")
