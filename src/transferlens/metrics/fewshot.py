"""n-way k-shot episodic evaluation on frozen features (nearest class centre or a linear probe).

Protocol (Snell et al. 2017; Chen et al. 2019; CIFAR-FS of Bertinetto et al. 2019): per episode draw
``n_way`` classes, then ``k_shot`` support and ``n_query`` query samples per class without replacement;
fit the classifier on the support set, score accuracy on the queries. Report the mean over episodes ± the
95% normal confidence half-width 1.96·sd/√E (sd with ddof=1). Episodes are drawn from
``numpy.random.default_rng(seed)`` only, so results are identical for a given seed.

Nearest class centre (NCC): ŷ(x) = argmin_c ‖x − μ̂_c‖, μ̂_c the support mean — the classifier of
Galanti et al. (ICLR 2022) and Munn, Dherin & Gonzalvo (NeurIPS 2024) whose error is bounded by the CDNV.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Literal

import numpy as np

from ..errors import InputError
from ..validation import as_float_matrix, as_labels

Classifier = Literal["ncc", "linear"]


@dataclass(frozen=True)
class FewShotResult:
    """Mean accuracy over episodes with its 95% CI half-width; ``accuracies`` holds every episode."""

    mean: float
    ci95: float
    std: float
    n_episodes: int
    n_way: int
    k_shot: int
    n_query: int
    classifier: str
    seed: int
    accuracies: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("accuracies")
        return d


def sample_episodes(
    labels: Any, *, n_way: int, k_shot: int, n_query: int, n_episodes: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(classes, support_idx, query_idx)`` per episode; index arrays have shape (n_way, k) / (n_way, q).

    Only classes with at least ``k_shot + n_query`` samples are eligible (a warning names the others).
    """
    y = as_labels(labels)
    for name, v, lo in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("n_query", n_query, 1), ("n_episodes", n_episodes, 1)):
        if int(v) != v or v < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {v}.")
    classes, counts = np.unique(y, return_counts=True)
    need = k_shot + n_query
    eligible = classes[counts >= need]
    if eligible.size < n_way:
        raise InputError(
            f"only {eligible.size} classes have at least k_shot + n_query = {need} samples, but n_way = {n_way}; "
            "lower n_way, k_shot or n_query, or add samples."
        )
    if eligible.size < classes.size:
        warnings.warn(
            f"{classes.size - eligible.size} class(es) with fewer than {need} samples are left out of the episodes.",
            stacklevel=2,
        )
    members = {int(c): np.flatnonzero(y == c) for c in eligible}
    rng = np.random.default_rng(seed)
    for _ in range(int(n_episodes)):
        chosen = rng.choice(eligible, size=n_way, replace=False)
        picks = np.stack([rng.choice(members[int(c)], size=need, replace=False) for c in chosen])
        yield chosen, picks[:, :k_shot], picks[:, k_shot:]


def _ncc_accuracy(x: np.ndarray, support: np.ndarray, query: np.ndarray) -> float:
    protos = x[support].mean(axis=1)  # (n_way, D)
    q = x[query.reshape(-1)]
    d2 = np.einsum("qd,qd->q", q, q)[:, None] - 2.0 * q @ protos.T + np.einsum("cd,cd->c", protos, protos)[None, :]
    pred = np.argmin(d2, axis=1)
    truth = np.repeat(np.arange(support.shape[0]), query.shape[1])
    return float(np.mean(pred == truth))


def _linear_accuracy(x: np.ndarray, support: np.ndarray, query: np.ndarray, c: float) -> float:
    from sklearn.linear_model import LogisticRegression

    n_way, k = support.shape
    xs = x[support.reshape(-1)]
    ys = np.repeat(np.arange(n_way), k)
    clf = LogisticRegression(C=c, max_iter=1000)
    clf.fit(xs, ys)
    pred = clf.predict(x[query.reshape(-1)])
    return float(np.mean(pred == np.repeat(np.arange(n_way), query.shape[1])))


def few_shot_eval(
    features: Any,
    labels: Any,
    *,
    n_way: int = 5,
    k_shot: int = 5,
    n_query: int = 15,
    n_episodes: int = 600,
    classifier: Classifier = "ncc",
    normalize: Literal["none", "l2"] = "none",
    probe_c: float = 1.0,
    seed: int = 0,
) -> FewShotResult:
    """Mean n-way k-shot accuracy ± 95% CI over ``n_episodes`` episodes on frozen ``features``.

    ``classifier="ncc"``: nearest support mean (Euclidean). ``"linear"``: multinomial logistic regression
    (sklearn, L2 with inverse strength ``probe_c``) fitted on the support set. ``normalize="l2"`` scales
    every feature vector to unit norm first (SimpleShot's L2N).
    """
    x = as_float_matrix(features, name="features")
    y = as_labels(labels, n_samples=x.shape[0])
    if classifier not in ("ncc", "linear"):
        raise InputError(f"classifier must be 'ncc' or 'linear', got {classifier!r}.")
    if normalize == "l2":
        nrm = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(nrm == 0):
            raise InputError("some feature vectors are all zero; they cannot be L2-normalised.")
        x = x / nrm
    elif normalize != "none":
        raise InputError(f"normalize must be 'none' or 'l2', got {normalize!r}.")
    if probe_c <= 0:
        raise InputError(f"probe_c must be positive, got {probe_c}.")
    from threadpoolctl import threadpool_limits

    accs = []
    # tiny per-episode problems: multi-threaded BLAS only adds overhead (8x slower L-BFGS on 2 busy cores)
    with threadpool_limits(limits=1):
        for _, sup, qry in sample_episodes(y, n_way=n_way, k_shot=k_shot, n_query=n_query, n_episodes=n_episodes, seed=seed):
            accs.append(_ncc_accuracy(x, sup, qry) if classifier == "ncc" else _linear_accuracy(x, sup, qry, probe_c))
    a = np.asarray(accs)
    sd = float(a.std(ddof=1)) if a.size > 1 else float("nan")
    return FewShotResult(
        mean=float(a.mean()),
        ci95=float(1.96 * sd / np.sqrt(a.size)) if a.size > 1 else float("nan"),
        std=sd,
        n_episodes=int(a.size),
        n_way=int(n_way),
        k_shot=int(k_shot),
        n_query=int(n_query),
        classifier=classifier,
        seed=int(seed),
        accuracies=a,
    )
