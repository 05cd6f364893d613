"""Neural collapse: simplex-ETF closed forms, monotone noise effects, invariances, streaming, and an
independent re-statement of the reference codes' formulas.

Convention cross-checked here (the "1/C convention"): NC1 = Tr(Σ_W Σ_B⁺)/K as tding1/Neural-Collapse and
rhubarbwu/neural-collapse; the Papyan/Han Colab's Tr(Sw @ inv_Sb) (svds, k = K−1) is K times larger.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import svds
from scipy.stats import ortho_group

from transferlens.errors import InputError
from transferlens.metrics import collapse as nc
from transferlens.metrics.stats import ClassStats

K, D, N_PER = 5, 9, 40


def _etf_means(k=K, d=D, scale=3.0, seed=0):
    """Simplex ETF: rows of sqrt(K/(K-1)) (I - 11ᵀ/K), embedded in R^d and rotated, plus an offset."""
    base = np.sqrt(k / (k - 1)) * (np.eye(k) - np.ones((k, k)) / k)
    emb = np.zeros((k, d))
    emb[:, :k] = base
    q = ortho_group.rvs(d, random_state=seed)
    return scale * emb @ q + 0.7  # common offset: the centre is removed by every measure


def _etf_data(noise=0.0, n_per=N_PER, seed=0):
    mu = _etf_means(seed=seed)
    y = np.repeat(np.arange(K), n_per)
    z = np.random.default_rng(seed + 1).normal(size=(y.size, D))
    return mu[y] + noise * z, y, mu


def _collapsed_classifier(mu):
    m = mu - mu.mean(axis=0)
    return 2.5 * m  # W ∝ M̃ (self-dual)


# --------------------------------------------------------------------------------------------------------
# closed forms at the simplex ETF
# --------------------------------------------------------------------------------------------------------
def test_simplex_etf_gives_zero_for_every_measure():
    x, y, mu = _etf_data(noise=0.0)
    w = _collapsed_classifier(mu)
    # logits w_c·h + b_c with w_c = μ_c, b_c = -‖μ_c‖²/2 equal -‖h - μ_c‖²/2 + const(h): NC4 = 0
    b = -0.5 * np.sum(mu**2, axis=1)
    r = nc.neural_collapse(x, y, weight=w)
    for key in ("nc1", "cdnv", "nc2_equinorm", "nc2_equiangularity", "nc2_max_angle", "nc2_etf_distance",
                "nc2_equinorm_classifier", "nc2_max_angle_classifier", "nc2_etf_distance_classifier", "nc3", "nc3_wh"):
        assert abs(r[key]) < 1e-10, (key, r[key])
    assert nc.nc4(x, mu, b, labels=y) == 0.0


@pytest.mark.parametrize("measure", ["nc1", "cdnv", "nc2_etf_distance", "nc2_max_angle", "nc2_equinorm", "nc3", "nc3_wh"])
def test_measures_increase_with_within_class_noise(measure):
    _, y, mu = _etf_data()
    w = _collapsed_classifier(mu)
    vals = [nc.neural_collapse(*_etf_data(noise=s)[:2], weight=w)[measure] for s in (0.0, 0.05, 0.2, 0.6, 1.5)]
    assert vals[0] < 1e-10
    assert all(a < b for a, b in zip(vals[:-1], vals[1:])), vals


def test_nc1_and_cdnv_closed_form_for_isotropic_noise():
    # Gaussian classes N(μ_c, σ²I) at a simplex ETF with ‖μ_c − μ_G‖ = s: Σ_B = (s²/(K−1)) P, Σ_W ≈ σ²I, so
    # NC1 ≈ σ² (K−1)² / (K s²) and CDNV = σ² D / (2 · s² · 2K/(K−1)).
    s, sigma = 3.0, 0.3
    x, y, mu = _etf_data(noise=sigma, n_per=4000, seed=2)
    nc1_expected = sigma**2 * (K - 1) ** 2 / (K * s**2)
    dist2 = 2 * s**2 * K / (K - 1)
    cdnv_expected = sigma**2 * D / dist2
    assert nc.nc1(x, y) == pytest.approx(nc1_expected, rel=0.05)
    assert nc.cdnv(x, y) == pytest.approx(cdnv_expected, rel=0.05)


# --------------------------------------------------------------------------------------------------------
# invariances and sign
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nc1_invariant_to_rotation_scaling_and_translation(seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), 12)
    x = rng.normal(size=(K, D))[y] * 2 + rng.normal(size=(y.size, D))
    q = ortho_group.rvs(D, random_state=seed)
    base = nc.nc1(x, y)
    assert nc.nc1(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert nc.nc1(37.5 * x, y) == pytest.approx(base, rel=1e-10)
    assert nc.nc1(1e-3 * x @ q + 5.0, y) == pytest.approx(base, rel=1e-9)
    assert nc.cdnv(4.0 * x @ q, y) == pytest.approx(nc.cdnv(x, y), rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_per=st.integers(2, 6), d=st.integers(2, 30), k=st.integers(2, 8))
def test_nc1_never_negative_even_rank_deficient_float32(seed, n_per, d, k):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    x = (rng.normal(size=(k, d))[y] + 0.1 * rng.normal(size=(y.size, d))).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = nc.nc1(x, y)
    assert np.isfinite(v) and v >= 0.0


# --------------------------------------------------------------------------------------------------------
# streaming == arrays
# --------------------------------------------------------------------------------------------------------
def test_streamed_statistics_give_identical_measures():
    x, y, mu = _etf_data(noise=0.4, seed=3)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(K, D))
    b = rng.normal(size=K)
    order = rng.permutation(len(y))
    st_a, st_b = ClassStats(K, D), ClassStats(K, D)
    for part in np.array_split(order[:90], 4):
        st_a.update(x[part], y[part])
    for part in np.array_split(order[90:], 3):
        st_b.update(x[part], y[part])
    st_a.merge(st_b)
    ref = nc.neural_collapse(x, y, weight=w, bias=b)
    streamed = nc.neural_collapse(st_a, weight=w)
    for key, val in streamed.items():
        assert val == pytest.approx(ref[key], rel=1e-10, abs=1e-12), key
    agree = nc.NCCAgreement(st_a.compute().means, w, b)
    for part in np.array_split(order, 5):
        agree.update(x[part])
    assert agree.compute()["mismatch"] == pytest.approx(ref["nc4"])


def test_geometric_collapse_with_class_variances_is_cdnv():
    x, y, _ = _etf_data(noise=0.5, seed=4)
    s = ClassStats.from_arrays(x, y).compute()
    assert nc.geometric_collapse(s.class_variances, s.means) == pytest.approx(nc.cdnv(s), rel=1e-12)
    assert nc.geometric_collapse(s.class_variances, s) == pytest.approx(nc.cdnv(s), rel=1e-12)


# --------------------------------------------------------------------------------------------------------
# cross-check against the reference codes' formulas, re-stated independently
# --------------------------------------------------------------------------------------------------------
def _random_features(seed=5, k=6, d=12, n_per=30):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)  # balanced: sample mean == mean of class means
    h = rng.normal(size=(k, d))[y] * 1.5 + rng.normal(size=(y.size, d))
    w = rng.normal(size=(k, d))
    b = rng.normal(size=k)
    return h, y, w, b


def _ref_stats(h, y):
    k = y.max() + 1
    mu_g = h.mean(axis=0)  # the references' global mean
    means = np.stack([h[y == c].mean(axis=0) for c in range(k)])
    sw = np.zeros((h.shape[1],) * 2)
    for c in range(k):
        dc = h[y == c] - means[c]
        sw += dc.T @ dc
    sw /= h.shape[0]
    m = means - mu_g
    sb = m.T @ m / k
    return means, mu_g, m, sw, sb, k


def test_nc1_matches_tding1_formula_and_colab_up_to_factor_K():
    h, y, _, _ = _random_features()
    _, _, _, sw, sb, k = _ref_stats(h, y)
    tding1 = np.trace(sw @ np.linalg.pinv(sb)) / k  # validate_NC.py style
    u, s, vt = svds(sb, k=k - 1)  # Papyan/Han Colab: inv_Sb from the top K-1 singular triplets
    inv_sb = u @ np.diag(1.0 / s) @ vt
    colab = np.trace(sw @ inv_sb)
    ours = nc.nc1(h, y)
    assert ours == pytest.approx(tding1, rel=1e-8)
    assert ours == pytest.approx(colab / k, rel=1e-8)  # the Colab omits 1/K


def test_nc2_matches_colab_and_tding1_formulas():
    h, y, w, _ = _random_features()
    _, _, m, _, _, k = _ref_stats(h, y)
    norms = np.linalg.norm(m, axis=1)
    equinorm_ref = np.std(norms, ddof=1) / np.mean(norms)  # torch.std is unbiased
    mn = m / norms[:, None]
    g = mn @ mn.T + 1.0 / (k - 1)
    g -= np.diag(np.diag(g))
    coherence_ref = np.abs(g).sum() / (k * (k - 1))
    cos_offdiag = (mn @ mn.T)[~np.eye(k, dtype=bool)]
    wwt = w @ w.T
    etf_w_ref = np.linalg.norm(wwt / np.linalg.norm(wwt) - (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1))
    mmt = m @ m.T
    etf_m_ref = np.linalg.norm(mmt / np.linalg.norm(mmt) - (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1))
    wn = np.linalg.norm(w, axis=1)
    r = nc.nc2(h, y, weight=w)
    assert r["equinorm"] == pytest.approx(equinorm_ref, rel=1e-10)
    assert r["max_angle"] == pytest.approx(coherence_ref, rel=1e-10)
    assert r["equiangularity"] == pytest.approx(np.std(cos_offdiag), rel=1e-10)  # ordered or unordered pairs: same
    assert r["etf_distance"] == pytest.approx(etf_m_ref, rel=1e-10)
    assert r["etf_distance_classifier"] == pytest.approx(etf_w_ref, rel=1e-10)
    assert r["equinorm_classifier"] == pytest.approx(np.std(wn, ddof=1) / np.mean(wn), rel=1e-10)


def test_nc3_matches_colab_and_tding1_formulas():
    h, y, w, _ = _random_features()
    _, _, m, _, _, k = _ref_stats(h, y)
    w_m_dist = np.linalg.norm(w / np.linalg.norm(w) - m / np.linalg.norm(m)) ** 2  # Colab W_M_dist
    wh = w @ m.T  # tding1 compute_W_H_relation with H = M̃ᵀ
    wh_ref = np.linalg.norm(wh / np.linalg.norm(wh) - (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1))
    assert nc.nc3(w, h, y) == pytest.approx(w_m_dist, rel=1e-10)
    assert nc.nc3_wh(w, h, y) == pytest.approx(wh_ref, rel=1e-10)


def test_nc4_matches_colab_ncc_mismatch():
    h, y, w, b = _random_features()
    means, *_ = _ref_stats(h, y)
    net_pred = np.argmax(h @ w.T + b, axis=1)
    ncc_scores = np.stack([np.linalg.norm(h - means[c], axis=1) for c in range(means.shape[0])], axis=1)
    mismatch = np.mean(net_pred != np.argmin(ncc_scores, axis=1))
    assert 0 < mismatch < 1
    assert nc.nc4(h, w, b, labels=y) == pytest.approx(mismatch)


def test_cdnv_matches_galanti_formula():
    h, y, _, _ = _random_features()
    k = y.max() + 1
    mus, vars_ = [], []
    for c in range(k):
        hc = h[y == c]
        mu = hc.mean(axis=0)
        mus.append(mu)
        vars_.append(np.mean(np.sum(hc**2, axis=1)) - mu @ mu)  # E‖h‖² − ‖μ‖²
    vals = [((vars_[i] + vars_[j]) / 2) / np.sum((mus[i] - mus[j]) ** 2) for i in range(k) for j in range(i + 1, k)]
    assert nc.cdnv(h, y) == pytest.approx(np.mean(vals), rel=1e-10)
    mat = nc.cdnv_matrix(h, y)
    assert np.allclose(mat, mat.T, equal_nan=True) and np.isnan(np.diag(mat)).all()


def test_center_option_matters_only_for_unbalanced_classes():
    h, y, _, _ = _random_features()
    assert nc.nc1(h, y, center="samples") == pytest.approx(nc.nc1(h, y), rel=1e-10)
    keep = np.concatenate([np.flatnonzero(y == 0)[:5], np.flatnonzero(y != 0)])
    hu, yu = h[keep], y[keep]
    means, mu_g, _, sw, _, k = _ref_stats(hu, yu)
    m = means - mu_g
    sb = m.T @ m / k
    ref = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / k  # full-rank Σ_B: K directions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours_samples = nc.nc1(hu, yu, center="samples")
    assert ours_samples <= ref + 1e-12  # the rank-(K-1) cut drops the extra direction
    assert nc.nc1(hu, yu) != pytest.approx(ours_samples, rel=1e-6)


# --------------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------------
def test_one_sample_class_is_refused():
    x = np.random.default_rng(0).normal(size=(7, 3))
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    for f in (nc.nc1, nc.cdnv, nc.nc2):
        with pytest.raises(InputError, match="fewer than 2"):
            f(x, y)


def test_missing_class_and_single_class_are_refused():
    x = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(InputError, match="no sample"):
        nc.nc1(x, np.array([0, 0, 0, 2, 2, 2]))
    st_ = ClassStats(4, 3).update(x, np.array([0, 0, 1, 1, 2, 2]))
    with pytest.raises(InputError, match="no sample"):
        nc.cdnv(st_)
    with pytest.raises(InputError, match="at least 2 classes"):
        nc.nc1(x, np.zeros(6, int))


def test_bad_values_and_shapes_are_refused():
    x, y, mu = _etf_data(noise=0.1)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        nc.nc1(bad, y)
    with pytest.raises(InputError, match="rows"):
        nc.nc3(np.ones((K + 1, D)), x, y)
    with pytest.raises(InputError, match="columns"):
        nc.nc2(x, y, weight=np.ones((K, D + 1)))
    with pytest.raises(InputError, match="bias"):
        nc.nc4(x, np.ones((K, D)), np.ones(K + 2), labels=y)
    with pytest.raises(InputError, match="means or the labels"):
        nc.nc4(x, np.ones((K, D)))
    with pytest.raises(InputError, match="coincide"):
        nc.nc1(np.ones((15, 3)), np.repeat(np.arange(3), 5))


def test_coinciding_class_means_warn_and_give_infinite_cdnv():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    mu = np.array([[0.0, 0, 0], [0, 0, 0], [5, 0, 0]])
    x = mu[y] + rng.normal(size=(30, 3))
    x[y == 1] -= x[y == 1].mean(0) - x[y == 0].mean(0)  # class 1 has exactly class 0's mean
    with pytest.warns(UserWarning, match="infinite"):
        assert nc.cdnv(x, y) == np.inf


def test_tiny_classes_warn_that_estimates_are_unreliable():
    rng = np.random.default_rng(1)
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2])
    x = rng.normal(size=(3, 4))[y] * 3 + rng.normal(size=(12, 4))
    with pytest.warns(UserWarning, match="fewer than 5"):
        nc.nc1(x, y)
