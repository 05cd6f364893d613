"""Lipschitz-bounded linear reference head and Lipschitz constants of the transformed classifier.

The task-relatedness bound (Mehra, Zhang & Hamm, NeurIPS 2024) needs a reference classifier whose
loss is Lipschitz in the features. As in the paper's code, the linear head ``h_R(z) = W z + c`` is
(re)trained on frozen, standardised reference features with an input-gradient penalty::

    CE(h_R(z), y) + mu * mean( relu(||grad_z CE(h_R(z), y)||_2 - tau0)^2
                             + relu(||grad_z CE(h_R(z), y_rand)||_2 - tau0)^2 )

with ``y_rand`` uniformly random labels. For a linear head the input gradient has the closed form
``grad_z CE(h(z), y) = W^T (softmax(h(z)) - e_y)``, so no double back-propagation is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from threadpoolctl import threadpool_limits

__all__ = [
    "fit_lipschitz_head",
    "class_mean_losses",
    "transformed_gradient_norms",
    "certified_lipschitz",
]


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Temporarily cap torch intra-op and BLAS / OpenMP threads (restored on exit)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(old)


def fit_lipschitz_head(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    lipschitz: float,
    *,
    penalty: float = 1e3,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int = 2048,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    num_threads: int | None = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Train a linear softmax head with the input-gradient penalty (true and random labels).

    ``features`` are (standardised) float64 ``(N, d)``; returns ``(W (C, d), c (C,))`` in float64.
    Adam, full batch when ``N <= batch_size`` else seeded mini-batches; deterministic for a seed.
    ``num_threads`` caps torch / BLAS threads during the fit (``None``: leave them as they are).
    """
    with _threads(num_threads):
        return _fit_head(features, labels, n_classes, lipschitz, penalty, steps, lr, batch_size, init, seed)


def _fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    lipschitz: float,
    penalty: float,
    steps: int,
    lr: float,
    batch_size: int,
    init: tuple[np.ndarray, np.ndarray] | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(int(seed))
    x_all = torch.as_tensor(features, dtype=torch.float64)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    n, d = x_all.shape
    if init is None:
        weight = torch.zeros(n_classes, d, dtype=torch.float64)
        bias = torch.zeros(n_classes, dtype=torch.float64)
    else:
        weight = torch.as_tensor(np.array(init[0], dtype=np.float64, copy=True))
        bias = torch.as_tensor(np.array(init[1], dtype=np.float64, copy=True))
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    eye = torch.eye(n_classes, dtype=torch.float64)
    for _ in range(int(steps)):
        if n > batch_size:
            idx = torch.randint(0, n, (batch_size,), generator=gen)
            x, y = x_all[idx], y_all[idx]
        else:
            x, y = x_all, y_all
        y_rand = torch.randint(0, n_classes, (x.shape[0],), generator=gen)
        logits = x @ weight.T + bias
        prob = torch.softmax(logits, dim=1)
        ce = torch.nn.functional.cross_entropy(logits, y)
        gram = weight @ weight.T  # ||W^T v||^2 = v^T (W W^T) v, cheap when C << d
        pen = 0.0
        for lab in (y, y_rand):
            diff = prob - eye[lab]
            gnorm = torch.sqrt(torch.clamp(((diff @ gram) * diff).sum(1), min=1e-30))
            pen = pen + torch.relu(gnorm - lipschitz).pow(2).mean()
        loss = ce + penalty * pen
        opt.zero_grad()
        loss.backward()
        opt.step()
    return weight.detach().numpy().copy(), bias.detach().numpy().copy()


def class_mean_losses(
    features: np.ndarray, labels: np.ndarray, weight: np.ndarray, bias: np.ndarray, n_classes: int
) -> np.ndarray:
    """Mean cross-entropy of the head on each class: ``l_c = mean_{i: y_i=c} CE(W z_i + c, c)``.

    Classes without samples get ``nan``.
    """
    logits = features @ weight.T + bias
    mx = logits.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
    ce = lse - logits[np.arange(len(labels)), labels]
    sums = np.bincount(labels, weights=ce, minlength=n_classes)
    counts = np.bincount(labels, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def transformed_gradient_norms(
    points: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    a_bar: np.ndarray,
    shift: np.ndarray,
    label_map: np.ndarray,
    *,
    chunk_elems: int = 20_000_000,
) -> np.ndarray:
    """Per-point max over target labels k of ``||grad_z  -log (B softmax(W Abar (z - b) + c))_k||_2``.

    With ``p = softmax(.)`` and ``r_k = B_k * p / (B_k . p)`` the gradient is ``(W Abar)^T (p - r_k)``,
    so its squared norm is ``(p - r_k)^T G G^T (p - r_k)`` with ``G = W Abar`` (``C_R x C_R`` Gram).
    The max over all labels covers the paper's true- and random-label gradients.
    """
    g = weight @ a_bar  # (C_R, d_T)
    gram = g @ g.T
    n = points.shape[0]
    k_t, c_r = label_map.shape
    step = max(1, chunk_elems // max(1, k_t * c_r))
    out = np.empty(n)
    for s in range(0, n, step):
        z = points[s : s + step]
        p = _softmax((z - shift) @ g.T + bias)  # (n, C_R)
        q = p @ label_map.T  # (n, K_T) = (B p)_k
        r = label_map[None, :, :] * p[:, None, :] / np.maximum(q[:, :, None], 1e-300)
        diff = p[:, None, :] - r  # (n, K_T, C_R)
        sq = np.einsum("nkc,cd,nkd->nk", diff, gram, diff, optimize=True)
        out[s : s + step] = np.sqrt(np.maximum(sq, 0.0)).max(axis=1)
    return out


def certified_lipschitz(weight: np.ndarray, a_bar: np.ndarray) -> float:
    """Global Lipschitz constant of ``z -> CE(B softmax(W Abar (z - b) + c), k)`` for every ``k``, ``B``.

    ``p - r_k`` is a difference of two probability vectors: it sums to 0 and has norm ``<= sqrt(2)``,
    hence ``||grad|| <= sqrt(2) * ||P W Abar||_2`` with ``P = I - 11^T / C_R`` (spectral norm).
    """
    g = weight @ a_bar
    g = g - g.mean(axis=0, keepdims=True)
    return float(np.sqrt(2.0) * np.linalg.norm(g, 2))
