"""Scores against closed forms, brute force and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from transferlens.errors import InputError
from transferlens.metrics.scores import (
    coding_rate,
    etran_energy,
    gbc,
    h_score,
    knn_accuracy,
    ledoit_wolf_shrinkage,
    leep,
    logme,
    logme_fit,
    nce,
    ncti_components,
    ncti_zoo,
    pactran_gaussian,
    shrinkage_h_score,
    transrate,
)
from transferlens.metrics.scores.lda import lda_posterior, shrink, sfda_shrinkage, within_class_cov


# ----------------------------------------------------------------------------------------------- LogME
def _dense_log_evidence(f: np.ndarray, t: np.ndarray, alpha: float, beta: float) -> float:
    """log p(t | F, alpha, beta) = log N(t; 0, I/beta + F F^T / alpha), per sample (direct dense formula)."""
    n = f.shape[0]
    cov = np.eye(n) / beta + f @ f.T / alpha
    return float(multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(t)) / n


@pytest.mark.parametrize("n,d", [(30, 5), (12, 20)])  # N > D and N < D (zero eigenvalues)
def test_logme_evidence_equals_dense_gaussian_density(n, d):
    rng = np.random.default_rng(1)
    y = np.arange(n) % 3
    f = rng.normal(size=(n, d)) + np.eye(3)[y] @ rng.normal(size=(3, d))
    fit = logme_fit(f, y)
    for k in range(3):
        t = (y == k).astype(float)
        dense = _dense_log_evidence(f, t, fit.alpha[k], fit.beta[k])
        assert fit.evidence[k] == pytest.approx(dense, rel=1e-9, abs=1e-9)
    assert logme(f, y) == pytest.approx(fit.evidence.mean())


def test_logme_fixed_point_reaches_the_maximum_evidence():
    rng = np.random.default_rng(2)
    n, d = 25, 4
    y = np.arange(n) % 2
    f = rng.normal(size=(n, d)) + 1.5 * np.outer(y, rng.normal(size=d))
    fit = logme_fit(f, y, max_iter=500, tol=1e-12)
    for k in range(2):
        t = (y == k).astype(float)
        res = scipy.optimize.minimize(
            lambda p: -_dense_log_evidence(f, t, np.exp(p[0]), np.exp(p[1])),
            x0=np.log([1.0, 1.0]), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000},
        )
        assert fit.evidence[k] == pytest.approx(-res.fun, abs=1e-6)


# --------------------------------------------------------------------------------------------- H-score
def _class_mean_matrix(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    return g


def test_h_score_equals_explicit_trace_formula(make_planted):
    f, y = make_planted(n=90, d=7, k=3, strength=1.0)
    cov_f = np.cov(f, rowvar=False)
    cov_g = np.cov(_class_mean_matrix(f, y), rowvar=False)
    explicit = np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g)
    assert h_score(f, y) == pytest.approx(explicit, rel=1e-10)
    assert 0.0 <= h_score(f, y) <= 2.0  # tr(Sigma^-1 Sigma_B) <= K - 1


def test_h_score_from_streamed_stats_equals_in_memory(make_planted):
    from transferlens.metrics.scores import h_score_stats
    from transferlens.metrics.stats import ClassStats

    f, y = make_planted(n=120, d=9, k=4, strength=1.0)
    streamed, sharded = ClassStats(4, 9), ClassStats(4, 9)
    for i in range(0, 120, 17):  # uneven batches
        streamed.update(f[i:i + 17], y[i:i + 17])
    sharded.update(f[:50], y[:50]).merge(ClassStats(4, 9).update(f[50:], y[50:]))
    assert h_score_stats(streamed) == pytest.approx(h_score(f, y), rel=1e-10)
    assert h_score_stats(sharded.compute()) == pytest.approx(h_score(f, y), rel=1e-10)
    with pytest.raises(InputError, match="ClassStats"):
        h_score_stats(f)


def test_ledoit_wolf_shrinkage_matches_sklearn():
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_lw

    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8))
    xc = x - x.mean(axis=0)
    alpha, mu = ledoit_wolf_shrinkage(xc)
    assert alpha == pytest.approx(sk_lw(xc, assume_centered=True), rel=1e-10)
    assert mu == pytest.approx(np.trace(xc.T @ xc / 50) / 8)


def test_shrinkage_h_score_equals_ledoit_wolf_trace_formula(make_planted):
    from sklearn.covariance import LedoitWolf

    f, y = make_planted(n=60, d=10, k=3, strength=0.8)
    fc = f - f.mean(axis=0)
    lw = LedoitWolf().fit(fc)
    covg = np.cov(_class_mean_matrix(fc, y), rowvar=False)
    explicit = np.trace(np.linalg.pinv(lw.covariance_, rcond=1e-15) @ ((1 - lw.shrinkage_) * covg))
    assert shrinkage_h_score(f, y) == pytest.approx(explicit, rel=1e-8)


# -------------------------------------------------------------------------------------------- LEEP, NCE
# 3 target classes, 2 source classes, 2 samples per class: theta = P(z | x_i).
_THETA = np.array([[0.8, 0.2], [0.6, 0.4], [0.45, 0.55], [0.1, 0.9], [0.3, 0.7], [0.7, 0.3]])
_Y = np.array([0, 0, 1, 1, 2, 2])


def test_leep_matches_hand_computation():
    # Joint N * P(y, z): y0 = [1.4, 0.6], y1 = [0.55, 1.45], y2 = [1.0, 1.0]; column sums 2.95, 3.05.
    eep = np.array([
        0.8 * 1.4 / 2.95 + 0.2 * 0.6 / 3.05,
        0.6 * 1.4 / 2.95 + 0.4 * 0.6 / 3.05,
        0.45 * 0.55 / 2.95 + 0.55 * 1.45 / 3.05,
        0.1 * 0.55 / 2.95 + 0.9 * 1.45 / 3.05,
        0.3 * 1.0 / 2.95 + 0.7 * 1.0 / 3.05,
        0.7 * 1.0 / 2.95 + 0.3 * 1.0 / 3.05,
    ])
    assert leep(_THETA, _Y) == pytest.approx(np.mean(np.log(eep)), rel=1e-12)
    assert leep(_THETA, _Y, log=False) == pytest.approx(np.mean(eep), rel=1e-12)


def test_leep_nce_refuse_swapped_arguments():
    with pytest.raises(InputError):
        leep(_Y, _THETA)
    with pytest.raises(InputError):
        nce(_Y, _THETA)


def test_nce_matches_hand_computation():
    # argmax z = [0, 0, 1, 1, 1, 0]; P(y|z=0) = (2/3, 0, 1/3), P(y|z=1) = (0, 2/3, 1/3), P(z) = (1/2, 1/2)
    expected = 2 * (2 / 6) * np.log(2 / 3) + 2 * (1 / 6) * np.log(1 / 3)
    assert nce(_THETA, _Y) == pytest.approx(expected, rel=1e-12)


def test_nce_is_zero_for_a_deterministic_relabelling():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.eye(5)[[3, 3, 0, 0, 4, 4]] * 0.9 + 0.02  # source class -> target class is a function
    assert nce(p, y) == pytest.approx(0.0, abs=1e-15)


# ------------------------------------------------------------------------------------------------ GBC
@pytest.mark.parametrize("gaussian_type", ["spherical", "diagonal"])
def test_gbc_equals_pairwise_bhattacharyya_loop(make_planted, gaussian_type):
    f, y = make_planted(n=60, d=5, k=3, strength=0.7)
    total = 0.0
    stats = [(f[y == c].mean(axis=0), np.maximum(f[y == c].var(axis=0), 1e-4)) for c in range(3)]
    for c1 in range(3):
        for c2 in range(3):
            if c1 == c2:
                continue
            (m1, v1), (m2, v2) = stats[c1], stats[c2]
            if gaussian_type == "spherical":
                v1, v2 = np.full(5, v1.mean()), np.full(5, v2.mean())
            v = (v1 + v2) / 2
            log_term = np.sum(np.log(v)) - 0.5 * np.sum(np.log(v1)) - 0.5 * np.sum(np.log(v2))
            db = np.sum((m1 - m2) ** 2 / v) / 8 + 0.5 * log_term
            total += np.exp(-db)
    assert gbc(f, y, gaussian_type=gaussian_type, variant="exact") == pytest.approx(-total, rel=1e-10)  # log term d times


# ------------------------------------------------------------------------------------------ TransRate
def test_transrate_equals_direct_logdet_formula(make_planted):
    f, y = make_planted(n=45, d=8, k=3, strength=0.5)
    fc = f - f.mean(axis=0)

    def rate(z, eps=1e-4):
        return 0.5 * np.linalg.slogdet(np.eye(z.shape[1]) + z.T @ z / (z.shape[0] * eps))[1]

    expected = rate(fc) - np.mean([rate(fc[y == c]) for c in range(3)])
    assert transrate(f, y) == pytest.approx(expected, rel=1e-10)
    assert coding_rate(fc[y == 0]) == pytest.approx(rate(fc[y == 0]), rel=1e-10)  # n_c < D: Sylvester branch
    weighted = rate(fc) - sum(np.mean(y == c) * rate(fc[y == c]) for c in range(3))
    assert transrate(f, y, class_weighting="size") == pytest.approx(weighted, rel=1e-10)


# --------------------------------------------------------------------------- LDA (SFDA / ETran) identities
def test_lda_posterior_equals_reference_generalised_eigen_construction(make_planted):
    f, y = make_planted(n=80, d=6, k=4, strength=0.6)
    means = np.stack([f[y == c].mean(axis=0) for c in range(4)])
    priors = np.bincount(y) / len(y)
    s_w = sum(priors[c] * np.cov(f[y == c], rowvar=False, bias=True) for c in range(4))
    lam = sfda_shrinkage(s_w)
    assert lam == pytest.approx(max(np.exp(-5 * np.linalg.eigvalsh(s_w)[-1]), 1e-10))
    s_t = shrink(np.cov(f, rowvar=False, bias=True), lam)
    s_w_shrunk = shrink(s_w, lam)
    _, v = scipy.linalg.eigh(s_t - s_w_shrunk, s_w_shrunk)  # the reference: eigh(S_b, S~_w), coef = mu V V^T
    coef = means @ v @ v.T
    logits = f @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
    expected = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    probs, lam_used = lda_posterior(f, y, 4)
    assert lam_used == pytest.approx(lam)
    np.testing.assert_allclose(probs, expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(within_class_cov(f, y, means), s_w, rtol=1e-10)


def test_etran_euclidean_variant_reproduces_orthonormal_eigh_of_the_repo(make_planted):
    f, y = make_planted(n=80, d=6, k=4, strength=0.6)
    means = np.stack([f[y == c].mean(axis=0) for c in range(4)])
    priors = np.bincount(y) / len(y)
    s_w = shrink(within_class_cov(f, y, means), 1e-3)
    s_b = np.cov(f, rowvar=False, bias=True) - s_w
    _, v = np.linalg.eigh(np.linalg.inv(s_w) @ s_b)  # non-symmetric input, as in the ETran repo
    coef = means @ v @ v.T
    logits = f @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
    expected = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    probs, _ = lda_posterior(f, y, 4, metric="euclidean")
    np.testing.assert_allclose(probs, expected, rtol=1e-8, atol=1e-12)


def test_etran_energy_is_mean_of_lowest_logsumexp():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 5))
    e = np.sort(logsumexp(x, axis=1))
    assert etran_energy(x) == pytest.approx(e[:5].mean())  # floor(5 N / 1000) = 5 samples
    assert etran_energy(x, energy_fraction=0.1) == pytest.approx(e[:100].mean())


# ------------------------------------------------------------------------------------------------ NCTI
def test_ncti_components_match_sklearn_pipeline(make_planted):
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    f, y = make_planted(n=120, d=12, k=3, strength=0.15)
    z = PCA(n_components=8, svd_solver="full").fit(f)
    zt = z.transform(f)
    lam = max(np.exp(-z.explained_variance_[:4].sum()), 1e-10)
    assert lam > 1e-10  # the 'eigen' branch is exercised
    clf = LinearDiscriminantAnalysis(solver="eigen", shrinkage=lam).fit(zt, y)
    low = clf.transform(zt)
    low -= low.mean(axis=0)
    p = clf.predict_proba(zt)
    expected = {
        "seli": np.linalg.norm(low, ord="nuc"),
        "ncc": p[np.arange(120), y].mean(),
        "vc": np.log(sum(np.linalg.norm(p[y == c], ord="nuc") for c in range(3))),
    }
    got = ncti_components(f, y, n_components=8, top_var=4)
    for key, val in expected.items():
        assert got[key] == pytest.approx(val, rel=1e-6)


def test_ncti_zoo_is_minmax_combination():
    comps = [{"seli": 10.0, "ncc": 0.5, "vc": 2.0}, {"seli": 20.0, "ncc": 0.9, "vc": 3.0},
             {"seli": 15.0, "ncc": 0.7, "vc": 2.5}]
    np.testing.assert_allclose(ncti_zoo(comps), [0.0 + 0.0 - 0.0, 1.0 + 1.0 - 1.0, 0.5 + 0.5 - 0.5])


# --------------------------------------------------------------------------------------------- PACTran
def test_pactran_gaussian_equals_bound_from_brute_force_optimum_and_hessian():
    rng = np.random.default_rng(5)
    n, d, k, lam, s2f = 60, 3, 3, 1.0, 100.0
    y = np.arange(n) % k
    x = rng.normal(size=(n, d)) + np.eye(k)[y] @ rng.normal(size=(k, d))
    xc = x - x.mean(axis=0)

    def ce(theta):
        w, b = theta[: d * k].reshape(d, k), theta[d * k:]
        z = xc @ w + b
        return np.mean(logsumexp(z, axis=1) - z[np.arange(n), y])

    def loss(theta):
        return ce(theta) + 0.5 * np.sum(theta[: d * k] ** 2) / (lam * n)

    opt = scipy.optimize.minimize(loss, np.zeros(d * k + k), method="BFGS", options={"gtol": 1e-10})
    h = 1e-4  # diagonal of the Hessian of the mean cross-entropy by central differences
    diag = [(ce(opt.x + h * e) - 2 * ce(opt.x) + ce(opt.x - h * e)) / h**2 for e in np.eye(d * k + k)]
    # reference: h = n * diag(Hess of mean CE) + 1/(lam n) on W; sigma^-2 = sum(h) lam n / (d k)
    sigma2_inv = (n * np.sum(diag) + d * k / (lam * n)) * lam * n / (d * k)
    expected = opt.fun + 0.5 * d * k / (lam * n) * (s2f / d) * np.log(sigma2_inv)
    got = pactran_gaussian(x, y, lda_factor=lam, s2_factor=s2f)
    assert got == pytest.approx(expected, rel=1e-4)  # L-BFGS stops at the reference tol=1e-6


# ------------------------------------------------------------------------------------------------- kNN
def test_knn_uniform_euclidean_equals_sklearn_leave_one_out(make_planted):
    from sklearn.neighbors import NearestNeighbors

    f, y = make_planted(n=101, d=4, k=2, strength=0.5)
    nn = NearestNeighbors(n_neighbors=6).fit(f)
    _, idx = nn.kneighbors(f)
    neigh = idx[:, 1:]  # drop self
    pred = (y[neigh].mean(axis=1) > 0.5).astype(int)  # k = 5 odd, K = 2: no ties
    assert knn_accuracy(f, y, k=5, metric="euclidean", weighting="uniform") == pytest.approx(np.mean(pred == y))


def test_knn_cosine_exp_weighting_equals_brute_force(make_planted):
    f, y = make_planted(n=60, d=5, k=3, strength=0.4)
    u = f / np.linalg.norm(f, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    correct = 0
    for i in range(60):
        nb = np.argsort(-sim[i])[:7]
        votes = np.zeros(3)
        for j in nb:
            votes[y[j]] += np.exp(sim[i, j] / 0.07)
        correct += votes.argmax() == y[i]
    assert knn_accuracy(f, y, k=7) == pytest.approx(correct / 60)


# ------------------------------------------------------------------------------------------------- PCA
@pytest.mark.parametrize("n,d,k", [(300, 80, 5), (300, 80, 30), (40, 90, 4)])  # Lanczos, dense, N < D
def test_pca_project_spans_the_top_principal_subspace(n, d, k):
    from transferlens.metrics.scores._common import pca_project

    rng = np.random.default_rng(6)
    x = rng.normal(size=(n, d)) * np.geomspace(5, 0.1, d) + 3.0
    z = pca_project(x, k)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(np.abs(z), np.abs(xc @ vt[:k].T), rtol=1e-6, atol=1e-8)  # up to signs
    np.testing.assert_allclose(np.linalg.norm(z, axis=0), s[:k], rtol=1e-8)


def test_h_score_pseudo_inverse_branch_for_singular_covariance(make_planted):
    f, y = make_planted(n=90, d=6, k=3, strength=1.0)
    f = np.hstack([f, f[:, :2] + f[:, 2:4]])  # rank-deficient: Cholesky fails or is ill-conditioned
    cov_f = np.cov(f, rowvar=False)
    cov_g = np.cov(_class_mean_matrix(f, y), rowvar=False)
    explicit = np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g)
    assert h_score(f, y) == pytest.approx(explicit, rel=1e-6)
