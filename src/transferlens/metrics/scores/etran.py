r"""ETran: energy-based transferability (energy + LDA terms), a zoo-relative score.

Gholami, Akbari, Wang, Zhang. "ETran: Energy-Based Transferability Estimation", ICCV 2023. Reference code:
mgholamikn/ETran (``metrics.py::Energy_Score``, ``metrics.py::LDA_Score``, combination in ``tw.py``).

* S_en (label-free): e_i = logsumexp_d F_id; S_en = mean of the lowest ``energy_fraction`` (0.5 %,
  the repo's ``Energy_Score(X, 0.5, 'bot')`` = floor(5 N / 1000) samples) of the e_i. Computed on the
  *features* as in the repo, so it depends on their scale.
* S_lda: mean LDA posterior of the true class, 1/N sum_i p(y_i | x_i), the SFDA first pass
  (shrinkage lam = max(exp(-5 lambda_max(S_w)), 1e-10)).
* ETran = 0.15 minmax(S_en) + 0.85 minmax(S_lda), min-max over the candidate models (``tw.py``).
  The regression term S_reg of the paper is not used for classification in the repo.

ETran is only meaningful across a zoo: :func:`etran_components` gives the per-model parts and
:func:`etran_zoo` the final scores of a zoo. Difference: the repo's LDA calls ``np.linalg.eigh`` on the
non-symmetric ``inv(S~_w) S_b``, which collapses it to a Euclidean nearest-mean rule (see ``lda.py``);
``lda_metric='euclidean'`` (the default) reproduces the repo, ``lda_metric='fisher'`` is the paper's LDA.

**Variants** (``lda_metric=``): ``'euclidean'`` (default; the official code's effective rule:
x mu_c - 1/2 ||mu_c||^2) and ``'fisher'`` (the paper's shrinkage LDA: x S~_w^{-1} mu_c). The Fisher posterior
is in-sample: with N <= D the shrunk S_w is nearly singular along the data, any labelling is separable and
S_lda saturates at 1.0 for every model, so the zoo min-max of S_lda becomes noise and ETran collapses to its
energy term (issue 18). The Euclidean rule uses no covariance and does not saturate (it depends on the
feature scale, as the energy term already does).

Why ``'euclidean'`` is the default (issue 18): on the 35 image targets of the target suite (7 groups;
``benchmarks/score_variants.py --suite``, ``benchmarks/results/zoo-suite/score_variants.json``), grouped
leave-one-group-out picks ``'euclidean'`` in 7 of 7 folds; mean weighted tau against fine-tuning accuracy
0.620 [95 % bootstrap over targets 0.537, 0.690] vs 0.530 [0.442, 0.616] for ``'fisher'``, paired
difference 0.090 [-0.006, 0.182] (against linear-probe accuracy 0.519 vs 0.496, 0.022 [-0.081, 0.129];
against 5-shot nearest-centroid accuracy 0.574 vs 0.413). The rule, fixed before the run: switch iff the
procedure picks the other variant in most folds and the paired mean difference exceeds 0.01. Until
2026-12-04 the default was ``'fisher'`` (docs/zoo.md, "Score variants").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ...errors import UsageError
from ._common import minmax, prepare_features, prepare_labelled, warn_unreliable
from .lda import lda_posterior

ENERGY_WEIGHT = 0.15
LDA_WEIGHT = 0.85


def etran_energy(features: Any, *, energy_fraction: float = 0.005) -> float:
    """S_en: mean of the lowest ``energy_fraction`` of logsumexp(F_i) over samples (label-free)."""
    if not 0.0 < energy_fraction <= 1.0:
        raise UsageError(f"energy_fraction must be in (0, 1], got {energy_fraction}")
    x = prepare_features(features)
    e = logsumexp(x, axis=1)
    m = int(np.floor(energy_fraction * x.shape[0] + 1e-9))
    if m < 1:
        warn_unreliable(
            f"ETran energy: {energy_fraction:.3%} of N={x.shape[0]} is < 1 sample; using the single lowest energy."
        )
        m = 1
    return float(np.mean(np.partition(e, m - 1)[:m]))


def etran_lda(features: Any, labels: Any, *, lda_metric: str = "euclidean") -> float:
    """S_lda: mean LDA posterior of the true class (higher is better)."""
    x, y, k = prepare_labelled(features, labels)
    if lda_metric == "fisher" and x.shape[0] <= x.shape[1]:
        warn_unreliable(
            f"ETran LDA with N={x.shape[0]} <= D={x.shape[1]} saturates near 1.0; use pca_dim."
        )
    probs, _ = lda_posterior(x, y, k, metric=lda_metric)
    return float(probs[np.arange(x.shape[0]), y].mean())


def etran_components(
    features: Any, labels: Any, *, energy_fraction: float = 0.005, lda_metric: str = "euclidean"
) -> dict[str, float]:
    """Per-model ETran parts ``{'energy': S_en, 'lda': S_lda}`` (combine across a zoo with :func:`etran_zoo`)."""
    return {
        "energy": etran_energy(features, energy_fraction=energy_fraction),
        "lda": etran_lda(features, labels, lda_metric=lda_metric),
    }


def etran_unnormalised(components: Mapping[str, float]) -> float:
    """0.15 S_en + 0.85 S_lda without the zoo min-max: NOT comparable across models; diagnostics only."""
    return ENERGY_WEIGHT * components["energy"] + LDA_WEIGHT * components["lda"]


def etran_zoo(components: Sequence[Mapping[str, float]]) -> np.ndarray:
    """ETran of every model of a zoo: 0.15 minmax(S_en) + 0.85 minmax(S_lda); higher is better."""
    en = np.array([c["energy"] for c in components], dtype=np.float64)
    ld = np.array([c["lda"] for c in components], dtype=np.float64)
    return ENERGY_WEIGHT * minmax(en) + LDA_WEIGHT * minmax(ld)
