"""Fitting task-relatedness: input checks, standardisation / reduction, heads, optimisation, terms."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import fields, replace
from typing import Any

import numpy as np

from ...errors import InputError, UsageError
from ...validation import as_float_matrix, check_features_labels
from .head import _threads, class_mean_losses, fit_lipschitz_head
from .optimise import optimise_transforms, polish_inverse
from .result import RelatednessConfig, TaskRelatednessResult, TransformedClassifier
from .terms import measure_terms

__all__ = ["task_relatedness"]


def _check_config(cfg: RelatednessConfig) -> None:
    if cfg.max_dim is not None and cfg.max_dim < 1:
        raise UsageError(f"max_dim must be >= 1 or None, got {cfg.max_dim}.")
    if cfg.num_threads is not None and cfg.num_threads < 1:
        raise UsageError(f"num_threads must be >= 1 or None, got {cfg.num_threads}.")
    if cfg.n_iter < 1 or cfg.batch_size < 2 or cfg.head_steps < 0 or cfg.max_eval_points < 2:
        raise UsageError("n_iter >= 1, batch_size >= 2, head_steps >= 0 and max_eval_points >= 2 are required.")
    if not 0.0 <= cfg.label_warmup <= 1.0:
        raise UsageError(f"label_warmup must be in [0, 1], got {cfg.label_warmup}.")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        raise UsageError(f"eval_fraction must be in [0, 1), got {cfg.eval_fraction}.")
    if len(cfg.head_lipschitz) == 0 or any(not (t > 0 and math.isfinite(t)) for t in cfg.head_lipschitz):
        raise UsageError(f"head_lipschitz must be positive finite values, got {cfg.head_lipschitz}.")
    for name in ("lr", "lr_label", "lr_prior", "label_cost", "lambda_wd", "lambda_pm", "lambda_ic", "head_penalty"):
        v = getattr(cfg, name)
        if not (v >= 0 and math.isfinite(v)):
            raise UsageError(f"{name} must be a finite non-negative number, got {v}.")


def _check_head(head: Any, k_r: int, d_r: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(head, (tuple, list)) and len(head) == 2:
        w, c = head
    else:
        w, c = head, None
    w = as_float_matrix(w, name="reference head weight")
    if w.shape != (k_r, d_r):
        raise InputError(
            f"reference head weight must have shape (n_reference_classes, reference_dim) = {(k_r, d_r)}, "
            f"got {w.shape}; pass the final linear layer's weight (out_features x in_features)."
        )
    if c is None:
        c = np.zeros(k_r)
    else:
        c = as_float_matrix(np.asarray(c, dtype=np.float64).reshape(1, -1), name="reference head bias")[0]
        if c.shape != (k_r,):
            raise InputError(f"reference head bias must have {k_r} entries, got {c.shape[0]}.")
    return w, c


def _split(labels: np.ndarray | None, n: int, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (by label) fit / eval index split; every class keeps >= 1 sample on each side."""
    if frac <= 0:
        idx = np.arange(n)
        return idx, idx
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == k) for k in np.unique(labels)]
    fit, ev = [], []
    for g in groups:
        g = rng.permutation(g)
        n_ev = int(min(max(round(frac * len(g)), 1), len(g) - 1))
        ev.append(g[:n_ev])
        fit.append(g[n_ev:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(ev))


def _scaler(x: np.ndarray, on: bool) -> tuple[np.ndarray, np.ndarray]:
    if not on:
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    scale = np.where(std > 1e-12 * max(1.0, float(np.abs(x).max())), std, 1.0)
    return mean, scale


def _reduction(
    zr: np.ndarray, zt: np.ndarray, max_dim: int | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Orthonormal PCA bases keeping ``max_dim`` components (``None`` = no reduction on that side).

    Same dimension: one basis from the pooled (per-task standardised, hence centred) fitting features,
    so that the two coordinate systems stay aligned and ``A = I`` remains the natural start.
    Different dimensions: one basis per task.
    """
    if max_dim is None or max(zr.shape[1], zt.shape[1]) <= max_dim:
        return None, None

    def basis(x: np.ndarray) -> np.ndarray:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return np.ascontiguousarray(vt[: min(max_dim, vt.shape[0])].T)

    if zr.shape[1] == zt.shape[1]:
        p = basis(np.vstack([zr, zt]))
        return p, p
    rb = basis(zr) if zr.shape[1] > max_dim else None
    tb = basis(zt) if zt.shape[1] > max_dim else None
    return rb, tb


# ------------------------------------------------------------------------------------------------
# public entry point
# ------------------------------------------------------------------------------------------------
def task_relatedness(
    reference_features: Any,
    reference_labels: Any,
    target_features: Any,
    target_labels: Any | None = None,
    *,
    reference_head: Any | None = None,
    n_target_classes: int | None = None,
    config: RelatednessConfig | None = None,
    **overrides: Any,
) -> TaskRelatednessResult:
    """Task-relatedness of a reference task to a target task in one model's feature space.

    Args:
        reference_features, reference_labels: ``(N_R, d_R)`` features and labels ``0..C_R-1`` of the
            reference task (the model's source data, or a user-given reference set); >= 2 per class.
        target_features: ``(N_T, d_T)`` target features; ``d_T`` may differ from ``d_R``.
        target_labels: labels ``0..K_T-1`` (>= 2 per class), or ``None`` for the label-free variant.
        reference_head: optional ``(weight (C_R, d_R), bias (C_R,))`` of the model's own source head,
            in raw feature coordinates (initialises the retrained head; see ``retrain_head``).
        n_target_classes: label-free only (default ``C_R``); with labels, all classes must occur.
        config: :class:`RelatednessConfig`; keyword ``overrides`` replace single fields of it.

    Returns a :class:`TaskRelatednessResult`; ``result.bound`` (lower = more related) and
    ``result.terms`` hold the three terms measured on the held-out split.
    """
    t0 = time.perf_counter()
    cfg = config or RelatednessConfig()
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(RelatednessConfig)}
        if unknown:
            raise UsageError(f"unknown task_relatedness option(s) {sorted(unknown)}.")
        cfg = replace(cfg, **overrides)
    cfg = replace(cfg, head_lipschitz=tuple(float(t) for t in np.atleast_1d(cfg.head_lipschitz)))
    _check_config(cfg)
    with _threads(cfg.num_threads):
        return _run(
            cfg, reference_features, reference_labels, target_features, target_labels,
            reference_head, n_target_classes, t0,
        )


def _run(
    cfg: RelatednessConfig,
    reference_features: Any,
    reference_labels: Any,
    target_features: Any,
    target_labels: Any | None,
    reference_head: Any | None,
    n_target_classes: int | None,
    t0: float,
) -> TaskRelatednessResult:
    xr, yr, k_r = check_features_labels(
        reference_features, reference_labels, min_classes=2, min_per_class=2, name="reference features"
    )
    if target_labels is None:
        xt = as_float_matrix(target_features, name="target features")
        yt = None
        if xt.shape[0] < 4:
            raise InputError(f"target features have {xt.shape[0]} rows; need at least 4 samples.")
        k_t = k_r if n_target_classes is None else int(n_target_classes)
        if k_t < 2:
            raise InputError(f"n_target_classes must be >= 2, got {k_t}.")
    else:
        xt, yt, k_t = check_features_labels(
            target_features, target_labels, min_classes=2, min_per_class=2,
            n_classes=n_target_classes, name="target features",
        )
    d_r, d_t = xr.shape[1], xt.shape[1]
    head_in = None if reference_head is None else _check_head(reference_head, k_r, d_r)
    if not cfg.retrain_head and head_in is None:
        raise UsageError("retrain_head=False needs reference_head=(weight, bias).")

    notes: list[str] = []

    def note(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=3)

    rng = np.random.default_rng(cfg.seed)
    fr, er = _split(yr, len(yr), cfg.eval_fraction, rng)
    ft, et = _split(yt, len(xt), cfg.eval_fraction, rng)
    ref_mean, ref_scale = _scaler(xr[fr], cfg.standardize)
    tgt_mean, tgt_scale = _scaler(xt[ft], cfg.standardize)
    zr = (xr - ref_mean) / ref_scale
    zt = (xt - tgt_mean) / tgt_scale
    ref_basis, tgt_basis = _reduction(zr[fr], zt[ft], cfg.max_dim)
    if ref_basis is not None:
        zr = zr @ ref_basis
    if tgt_basis is not None:
        zt = zt @ tgt_basis
    zr_f, yr_f, zr_e, yr_e = zr[fr], yr[fr], zr[er], yr[er]
    zt_f, zt_e = zt[ft], zt[et]
    yt_f = None if yt is None else yt[ft]
    yt_e = None if yt is None else yt[et]
    if len(fr) < zr.shape[1] or len(ft) < zt.shape[1]:
        note(
            f"fewer fitting samples than feature dimensions (reference {len(fr)} vs d={zr.shape[1]}, target "
            f"{len(ft)} vs d={zt.shape[1]}): the learned map over-fits and W1 between samples is dominated by "
            "sampling noise, so the bound is loose; reduce the dimension (PCA) or add samples."
        )

    # heads: one per penalty target (or the given head as is); std coords: W_std = W diag(scale)
    if head_in is not None:
        w_std = head_in[0] * ref_scale[None, :]
        init = (w_std if ref_basis is None else w_std @ ref_basis, head_in[0] @ ref_mean + head_in[1])
    else:
        init = None
    if cfg.retrain_head:
        # warm-started chain from the least to the most constrained head: the first gets head_steps,
        # the others a third of it (any head gives a valid bound; convergence only affects tightness)
        taus: list[float | None] = sorted(cfg.head_lipschitz, reverse=True)
        heads: list[tuple[np.ndarray, np.ndarray]] = []
        for j, t in enumerate(taus):
            start = init if j == 0 else heads[-1]
            steps = cfg.head_steps if j == 0 else max(1, cfg.head_steps // 3)
            heads.append(
                fit_lipschitz_head(
                    zr_f, yr_f, k_r, t, penalty=cfg.head_penalty, steps=steps, init=start, seed=cfg.seed,
                    num_threads=None,  # already limited by the caller
                )
            )
    else:
        taus, heads = [None], [init]
    primary = heads[0]  # the least constrained head drives D through L_w during the optimisation
    p_ref = np.bincount(yr_f, minlength=k_r) / len(yr_f)
    params, history = optimise_transforms(
        zr_f, yr_f, zt_f, yt_f, k_r, k_t,
        class_mean_losses(zr_f, yr_f, primary[0], primary[1], k_r), primary, p_ref, cfg, rng,
    )
    params["A_bar"] = polish_inverse(params["A"])

    def classifier(head: tuple[np.ndarray, np.ndarray]) -> TransformedClassifier:
        return TransformedClassifier(
            ref_mean=ref_mean, ref_scale=ref_scale, tgt_mean=tgt_mean, tgt_scale=tgt_scale,
            head_weight=head[0], head_bias=head[1], ref_basis=ref_basis, tgt_basis=tgt_basis, **params,
        )

    # pick the head with the smallest bound on the fitting split (W does not depend on the head)
    candidates: list[tuple[float, float]] = []
    best, w_fit = 0, None
    if len(heads) > 1:
        bounds = []
        for j, hd in enumerate(heads):
            t_fit = measure_terms(
                classifier(hd), zr_f, yr_f, zt_f, yt_f, cfg.max_eval_points,
                np.random.default_rng(cfg.seed + 1), wasserstein=w_fit,
            )
            w_fit = t_fit.wasserstein
            bounds.append(t_fit.bound)
            candidates.append((float(taus[j]), float(t_fit.bound)))
        best = int(np.argmin(bounds))
    clf = classifier(heads[best])
    terms = measure_terms(clf, zr_e, yr_e, zt_e, yt_e, cfg.max_eval_points, np.random.default_rng(cfg.seed + 2))

    if terms.prior_mismatch > 0.1:
        note(
            f"B D differs from the target class prior (L1 = {terms.prior_mismatch:.3f}); the three-term "
            "bound assumes they match, so read it as approximate (increase n_iter or lambda_pm)."
        )
    if terms.transformed_reference_loss > 1.05 * (terms.reference_loss + terms.label_mismatch) + 1e-3:
        note(
            "the transformed classifier loses more on the transformed reference "
            f"({terms.transformed_reference_loss:.3f}) than L_w + H ({terms.reference_loss + terms.label_mismatch:.3f}): "
            "the approximate inverse Abar is poor (typical when d_T < d_R); the bound may not hold."
        )
    if not math.isfinite(terms.wasserstein):
        note("a target class receives no reference mass under B D; W is infinite (tasks unrelated under B).")
    return TaskRelatednessResult(
        terms=terms,
        classifier=clf,
        head_lipschitz=taus[best],
        head_candidates=tuple(candidates),
        history=history,
        warnings=tuple(notes),
        seconds=time.perf_counter() - t0,
        config=cfg,
    )
