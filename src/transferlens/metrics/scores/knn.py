r"""Leave-one-out k-NN accuracy on the target features: the simple baseline.

Sorkhei, Matsoukas, Haslum, Smith. "k-NN as a Simple and Effective Estimator of Transferability",
arXiv 2503.18528 (2025): across 23 metrics and 16 datasets a k-NN evaluation of the pretrained features
predicted transfer performance best. The paper describes it as the k-NN evaluation "commonly used to
evaluate feature quality for self-supervision"; its exact k and weighting are not verified here, so the
defaults follow that common protocol (Wu et al. 2018; DINO, Caron et al. 2021): cosine similarity,
k = 20, votes weighted by exp(sim / T) with T = 0.07. ``weighting='uniform'`` gives a plain majority
vote (ties -> the class of the nearer neighbours); it is the only weighting for ``metric='euclidean'``.

    acc = 1/N sum_i 1[ argmax_c sum_{j in kNN(i), j != i} w_ij 1[y_j = c] = y_i ]       (higher is better)

Cosine k-NN is invariant to rotations and to per-sample (hence isotropic) scaling; ``metric='euclidean'``
is rotation- and isotropic-scale-invariant too. Similarities are computed in float32 blocks (the
N x N product dominates the cost; float32 halves it and does not change neighbours beyond ties).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ._common import prepare_labelled, warn_unreliable


def knn_accuracy(
    features: Any,
    labels: Any,
    *,
    k: int = 20,
    metric: str = "cosine",
    weighting: str = "exp",
    temperature: float = 0.07,
    block_size: int = 1024,
) -> float:
    """Leave-one-out k-NN accuracy (see module docstring)."""
    if metric not in ("cosine", "euclidean"):
        raise UsageError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if weighting not in ("exp", "uniform"):
        raise UsageError(f"weighting must be 'exp' or 'uniform', got {weighting!r}")
    if weighting == "exp" and metric != "cosine":
        raise UsageError("weighting='exp' (similarity / temperature) needs metric='cosine'; use weighting='uniform'.")
    x, y, n_cls = prepare_labelled(features, labels)
    n = x.shape[0]
    kk = int(min(k, n - 1))
    if kk < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    if kk >= n - 1:
        warn_unreliable(
            f"k-NN with k={k} >= N-1={n - 1}: every other sample votes, so the leave-one-out vote is biased "
            "against the held-out sample's own class (balanced classes and uninformative features score 0, "
            "not chance); use k well below N."
        )
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        xs = (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        sq = None
    else:
        xs = x.astype(np.float32)
        sq = np.einsum("ij,ij->i", x, x).astype(np.float32)
    correct = 0
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        sim = xs[start:stop] @ xs.T  # (b, N)
        if sq is not None:  # negative squared distance, up to a per-row constant
            sim = 2.0 * sim - sq[None, :]
        rows = np.arange(stop - start)
        sim[rows, np.arange(start, stop)] = -np.inf  # leave one out
        idx = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        nn_sim = np.take_along_axis(sim, idx, axis=1).astype(np.float64)
        order = np.argsort(-nn_sim, axis=1, kind="stable")  # nearest first
        nn_sim = np.take_along_axis(nn_sim, order, axis=1)
        nn_lab = y[np.take_along_axis(idx, order, axis=1)]
        if weighting == "exp":  # cosine <= 1: shifting by 1 avoids overflow and keeps the argmax
            w = np.exp((nn_sim - 1.0) / temperature)
        else:  # majority vote; a tiny rank bonus breaks ties towards the nearer neighbours
            w = np.broadcast_to(1.0 + 1e-6 * np.arange(kk, 0, -1, dtype=np.float64), nn_sim.shape)
        votes = np.zeros((stop - start, n_cls))
        np.add.at(votes, (np.repeat(rows, kk), nn_lab.ravel()), w.ravel())
        correct += int(np.sum(votes.argmax(axis=1) == y[start:stop]))
    return correct / n
