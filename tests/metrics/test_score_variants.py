"""Score variants that differ from their reference code (issue 18 item 5): GBC's log term, ETran's LDA metric."""

from __future__ import annotations

import numpy as np
import pytest

from transferlens.errors import UsageError
from transferlens.metrics.scores import compute_score
from transferlens.metrics.scores.etran import etran_lda
from transferlens.metrics.scores.gbc import gbc


def _planted(n: int = 60, d: int = 5, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = 0.7 * rng.normal(size=(k, d))[y] + rng.normal(size=(n, d)) * (1 + 0.5 * y)[:, None]  # unequal class spreads
    return x, y


def _reference_gbc(x: np.ndarray, y: np.ndarray) -> float:
    """The google-research loop, written out: spherical sigma is a scalar, so sum(log(avg_sigma)) is one log."""
    k = int(y.max()) + 1
    stats = [(x[y == c].mean(axis=0), float(np.maximum(x[y == c].var(axis=0), 1e-4).mean())) for c in range(k)]
    total = 0.0
    for c1 in range(k):
        for c2 in range(k):
            if c1 != c2:
                (m1, s1), (m2, s2) = stats[c1], stats[c2]
                avg = (s1 + s2) / 2
                db = np.sum((m1 - m2) ** 2 / avg) / 8 + 0.5 * (np.log(avg) - 0.5 * np.log(s1) - 0.5 * np.log(s2))
                total += np.exp(-db)
    return -total


def test_gbc_reference_variant_equals_the_reference_loop() -> None:
    x, y = _planted()
    assert gbc(x, y, variant="reference") == pytest.approx(_reference_gbc(x, y), rel=1e-10)
    assert gbc(x, y) == gbc(x, y, variant="reference")  # the default since the suite decision (issue 18)
    # the exact variant counts the log term d = 5 times, so with unequal spreads the two differ
    assert abs(gbc(x, y, variant="exact") - gbc(x, y, variant="reference")) > 1e-3


def test_gbc_variants_agree_where_the_log_term_is_counted_once_anyway() -> None:
    x, y = _planted()
    assert gbc(x[:, :1], y, variant="exact") == pytest.approx(gbc(x[:, :1], y, variant="reference"), rel=1e-12)  # d = 1
    assert gbc(x, y, gaussian_type="diagonal", variant="exact") == gbc(x, y, gaussian_type="diagonal", variant="reference")
    x_eq = np.concatenate([x[y == 0]] * 3)  # every class the same spread: the log term is 0 in both
    y_eq = np.repeat(np.arange(3), (y == 0).sum())
    x_eq = x_eq + 2.0 * y_eq[:, None]
    assert gbc(x_eq, y_eq, variant="exact") == pytest.approx(gbc(x_eq, y_eq, variant="reference"), rel=1e-12)


def test_gbc_reference_variant_is_rotation_invariant_and_registered() -> None:
    x, y = _planted()
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))
    assert gbc(x @ q, y, variant="reference") == pytest.approx(gbc(x, y, variant="reference"), rel=1e-9)
    res = compute_score("gbc", x, y, variant="reference")
    assert res.value == pytest.approx(_reference_gbc(x, y), rel=1e-10) and res.options == {"variant": "reference"}
    with pytest.raises(UsageError, match="variant"):
        gbc(x, y, variant="paper")


def test_etran_fisher_saturates_when_n_le_d_and_euclidean_does_not() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(20) % 4
    x = rng.normal(size=(20, 40))  # N < D, no class signal at all
    with pytest.warns(UserWarning, match="saturates"):
        fisher = etran_lda(x, y, lda_metric="fisher")
    assert fisher > 0.99  # in-sample Fisher LDA separates any labelling when N <= D
    assert etran_lda(x, y, lda_metric="euclidean") < 0.9


def test_etran_default_is_the_euclidean_rule() -> None:
    """The suite decision (issue 18, docs/zoo.md "Score variants"): the official code's Euclidean LDA is the default."""
    from transferlens.metrics.scores.etran import etran_components

    x, y = _planted()
    assert etran_lda(x, y) == etran_lda(x, y, lda_metric="euclidean") != etran_lda(x, y, lda_metric="fisher")
    assert etran_components(x, y)["lda"] == etran_lda(x, y, lda_metric="euclidean")
    assert compute_score("etran", x, y).components == etran_components(x, y, lda_metric="euclidean")
