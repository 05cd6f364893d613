"""Measuring the three terms of the bound for fitted transforms on given samples."""

from __future__ import annotations

import numpy as np

from .head import certified_lipschitz, class_mean_losses, transformed_gradient_norms
from .transport import class_conditional_w1, wasserstein1
from .result import RelatednessTerms, TransformedClassifier

__all__ = ["measure_terms", "stratified_subsample"]


def stratified_subsample(labels: np.ndarray | None, n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` indices, stratified by label (each present class keeps >= 1)."""
    if n <= cap:
        return np.arange(n)
    if labels is None:
        return np.sort(rng.choice(n, cap, replace=False))
    out = []
    for k in np.unique(labels):
        g = np.flatnonzero(labels == k)
        m = max(1, int(round(cap * len(g) / n)))
        out.append(rng.choice(g, min(m, len(g)), replace=False))
    return np.sort(np.concatenate(out))


def measure_terms(
    clf: TransformedClassifier,
    zr: np.ndarray,
    yr: np.ndarray,
    zt: np.ndarray,
    yt: np.ndarray | None,
    cap: int,
    rng: np.random.Generator,
    wasserstein: float | None = None,
) -> RelatednessTerms:
    """All terms on standardised samples; ``wasserstein`` may be passed to reuse a computed W.

    The reference-loss and label terms use the joint weights ``w_kj = p_T(k) B_kj D_j / (B D)_k``
    (target-class marginal exactly ``p_T``, reference marginal ``D2_j = sum_k w_kj``):
    ``L_w = sum_j D2_j l_j`` and ``H = -sum_kj w_kj log B_kj``. They equal the paper's ``L_w(D)`` and
    ``H(B, D)`` when ``B D = p_T`` and keep the bound valid when the optimiser has not reached that.
    """
    k_r = clf.head_weight.shape[0]
    B, D = clf.B, clf.D
    k_t = B.shape[0]
    ref_loss = class_mean_losses(zr, yr, clf.head_weight, clf.head_bias, k_r)
    present = np.isfinite(ref_loss)  # a class missing from this sample: its mass goes to the others
    ref_loss = np.where(present, ref_loss, 0.0)
    d_in = D * present
    d_in = d_in / d_in.sum()

    ir = stratified_subsample(yr, len(yr), cap, rng)
    it = stratified_subsample(yt, len(zt), cap, rng)
    zr_s, yr_s, zt_s = zr[ir], yr[ir], zt[it]
    zr_t = zr_s @ clf.A.T + clf.b  # transformed reference, standardised target coordinates
    if yt is None:
        p_t = np.bincount(clf.proba_std(zt).argmax(axis=1), minlength=k_t) / len(zt)  # pseudo-labels
    else:
        p_t = np.bincount(yt, minlength=k_t) / len(yt)
    bd = B @ d_in
    joint = p_t[:, None] * B * d_in[None, :] / np.maximum(bd, 1e-300)[:, None]  # w_kj, sums to 1
    d_prime = joint.sum(axis=0)
    l_w = float((d_prime * ref_loss).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        h = float(-np.where(joint > 0, joint * np.log(B), 0.0).sum())

    counts = np.bincount(yr_s, minlength=k_r).astype(np.float64)
    inv_n = 1.0 / np.maximum(counts[yr_s], 1.0)
    if wasserstein is None:
        if yt is None:
            wasserstein = wasserstein1(zr_t, zt_s, a=d_prime[yr_s] * inv_n)
        else:
            src_w = B[:, yr_s] * (d_in[yr_s] * inv_n)[None, :]
            wasserstein, _ = class_conditional_w1(zr_t, src_w, zt_s, yt[it], p_t)

    pts = np.vstack([zr_t, zt_s])
    tau = float(transformed_gradient_norms(pts, clf.head_weight, clf.head_bias, clf.A_bar, clf.b, B).max())
    tau_c = certified_lipschitz(clf.head_weight, clf.A_bar)

    # CE of h_R''' on the transformed reference: sample i (class j) carries label k with mass w_kj / n_j
    q_ref = np.clip(clf.proba_std(zr_t), 1e-300, None)
    tr_loss = float(((joint[:, yr_s].T * inv_n[:, None]) * -np.log(q_ref)).sum())

    tgt_ce = tgt_acc = None
    if yt is not None:
        q_t = np.clip(clf.proba_std(zt), 1e-300, None)
        tgt_ce = float(-np.log(q_t[np.arange(len(yt)), yt]).mean())
        tgt_acc = float((q_t.argmax(axis=1) == yt).mean())
    return RelatednessTerms(
        reference_loss=l_w,
        label_mismatch=h,
        distribution_mismatch=tau * float(wasserstein),
        wasserstein=float(wasserstein),
        lipschitz=tau,
        lipschitz_certified=tau_c,
        transformed_reference_loss=tr_loss,
        prior_mismatch=float(np.abs(p_t - bd).sum()),
        target_cross_entropy=tgt_ce,
        target_accuracy=tgt_acc,
        label_free=yt is None,
        n_reference=len(zr),
        n_target=len(zt),
    )
