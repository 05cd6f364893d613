"""Joint optimisation of (A, Abar, b, B, D): exact OT on batches alternating with Adam steps."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import torch

from .transport import emd, pairwise_euclidean

if TYPE_CHECKING:
    from .result import RelatednessConfig

__all__ = ["optimise_transforms", "polish_inverse"]


def _stratified_batch(
    groups: list[np.ndarray], per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    idx, cls = [], []
    for k, g in enumerate(groups):
        take = g if len(g) <= per_class else rng.choice(g, per_class, replace=False)
        idx.append(take)
        cls.append(np.full(len(take), k))
    return np.concatenate(idx), np.concatenate(cls)


def optimise_transforms(
    zr: np.ndarray,
    yr: np.ndarray,
    zt: np.ndarray,
    yt: np.ndarray | None,
    k_r: int,
    k_t: int,
    class_loss: np.ndarray,
    head: tuple[np.ndarray, np.ndarray],
    p_ref: np.ndarray,
    cfg: "RelatednessConfig",
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Alternate exact OT on a batch pair (plan held fixed) with one Adam step on all parameters."""
    f64 = torch.float64
    d_r, d_t = zr.shape[1], zt.shape[1]
    m = min(d_r, d_t)
    A = torch.zeros(d_t, d_r, dtype=f64)
    A[range(m), range(m)] = 1.0
    A_bar = A.T.clone()
    b = torch.zeros(d_t, dtype=f64)
    if yt is None and k_t == k_r:
        b_logit = 4.0 * torch.eye(k_t, dtype=f64)  # label-free: target classes are anonymous, start at B = I
    else:
        b_logit = torch.zeros(k_t, k_r, dtype=f64)  # exactly uniform: the first plans are feature-driven
    d_logit = torch.log(torch.as_tensor(p_ref, dtype=f64))  # softmax(log p) = p (the paper's init is softmax(p))
    params = [A, A_bar, b, b_logit, d_logit]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(
        [
            {"params": [A, A_bar, b], "lr": cfg.lr},
            {"params": [b_logit], "lr": cfg.lr_label},
            {"params": [d_logit], "lr": cfg.lr_prior},
        ]
    )
    w_h = torch.as_tensor(head[0], dtype=f64)
    c_h = torch.as_tensor(head[1], dtype=f64)
    cl = torch.as_tensor(np.nan_to_num(class_loss, nan=0.0), dtype=f64)
    eye_t = torch.eye(k_t, dtype=f64)
    eye_r, eye_tt = torch.eye(d_r, dtype=f64), torch.eye(d_t, dtype=f64)
    zr_all = torch.as_tensor(zr, dtype=f64)
    zt_all = torch.as_tensor(zt, dtype=f64)
    ref_groups = [np.flatnonzero(yr == k) for k in range(k_r)]
    per_r = max(1, math.ceil(cfg.batch_size / k_r))
    if yt is not None:
        tgt_groups = [np.flatnonzero(yt == k) for k in range(k_t)]
        per_t = max(1, math.ceil(cfg.batch_size / k_t))
        p_tgt = torch.as_tensor(np.bincount(yt, minlength=k_t) / len(yt), dtype=f64)
    hist: dict[str, list[float]] = {k: [] for k in ("loss", "transport", "entropy", "ref_loss", "prior", "inverse")}

    ramp = max(1.0, cfg.label_warmup * cfg.n_iter)
    for step in range(int(cfg.n_iter)):
        # B's learning rate ramps up linearly: D (and A) settle before B commits to a label map
        opt.param_groups[1]["lr"] = cfg.lr_label * min(1.0, (step + 1) / ramp)
        ir, cr = _stratified_batch(ref_groups, per_r, rng)
        if yt is None:
            it = rng.choice(len(zt), min(cfg.batch_size, len(zt)), replace=False)
            w_t = np.full(len(it), 1.0 / len(it))
            ct = None
        else:
            it, ct = _stratified_batch(tgt_groups, per_t, rng)
            w_t = (p_tgt.numpy() / np.bincount(ct, minlength=k_t))[ct]
        x_r, x_t = zr_all[ir], zt_all[it]
        cnt_r = torch.as_tensor(np.bincount(cr, minlength=k_r), dtype=f64)
        cr_t = torch.as_tensor(cr)

        B = torch.softmax(b_logit, dim=0)
        D = torch.softmax(d_logit, dim=0)
        a_w = D[cr_t] / cnt_r[cr_t]
        with torch.no_grad():
            moved = x_r @ A.T + b
            feat = torch.as_tensor(pairwise_euclidean(moved.numpy(), x_t.numpy()))
            scale = float(feat.mean()) + 1e-12
            cost = feat
            if ct is not None:
                lab = torch.cdist(B.T[cr_t], eye_t[torch.as_tensor(ct)])
                cost = feat + cfg.label_cost * scale * lab
        plan, u, _ = emd(a_w.detach().numpy(), w_t, cost.numpy())
        # differentiable transport value on the plan's support (<= n + m - 1 pairs)
        si, sj = np.nonzero(plan > 0)
        pi = torch.as_tensor(plan[si, sj])
        si_t, sj_t = torch.as_tensor(si), torch.as_tensor(sj)
        diff = x_r[si_t] @ A.T + b - x_t[sj_t]
        c_pairs = torch.sqrt((diff * diff).sum(1) + 1e-24)
        if ct is not None:
            ldiff = B.T[cr_t[si_t]] - eye_t[torch.as_tensor(ct)[sj_t]]
            c_pairs = c_pairs + cfg.label_cost * scale * torch.sqrt((ldiff * ldiff).sum(1) + 1e-24)
        u_t = torch.as_tensor(u)
        transport = (pi * c_pairs).sum() + ((a_w - a_w.detach()) * u_t).sum()  # d/dD through the dual

        entropy = -(D * (B * torch.log(B)).sum(0)).sum()
        ref_loss = (D * cl).sum()
        if ct is None:
            with torch.no_grad():
                p_hat = torch.softmax(((x_t - b) @ A_bar.T) @ w_h.T + c_h, dim=1) @ B.T
                target_prior = torch.bincount(p_hat.argmax(1), minlength=k_t).to(f64) / len(p_hat)
        else:
            target_prior = p_tgt
        prior = ((target_prior - B @ D) ** 2).sum()
        inverse = ((A @ A_bar - eye_tt) ** 2).sum() + ((A_bar @ A - eye_r) ** 2).sum()
        loss = entropy + ref_loss + cfg.lambda_wd * transport + cfg.lambda_pm * prior + cfg.lambda_ic * inverse
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, v in zip(hist, (loss, transport, entropy, ref_loss, prior, inverse)):
            hist[k].append(float(v.detach()))

    out = {
        "A": A.detach().numpy().copy(),
        "A_bar": A_bar.detach().numpy().copy(),
        "b": b.detach().numpy().copy(),
        "B": torch.softmax(b_logit, 0).detach().numpy().copy(),
        "D": torch.softmax(d_logit, 0).detach().numpy().copy(),
    }
    return out, {k: np.asarray(v) for k, v in hist.items()}


def polish_inverse(A: np.ndarray) -> np.ndarray:
    """Exact minimiser of ||A X - I||^2 + ||X A - I||^2: (A^T A) X + X (A A^T) = 2 A^T (= A^-1 if square)."""
    eps = 1e-10 * max(1.0, float(np.abs(A).max()) ** 2)
    ata = A.T @ A + eps * np.eye(A.shape[1])
    aat = A @ A.T + eps * np.eye(A.shape[0])
    return scipy.linalg.solve_sylvester(ata, aat, 2.0 * A.T)
