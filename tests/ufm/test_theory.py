"""L-BFGS solutions of the UFM against the closed forms (spec nc_landscape_dk.md section 2 and 7A)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from transferlens.ufm import theory as T
from transferlens.ufm.objectives import UFMProblem
from transferlens.ufm.solver import solve_lbfgs

ETF_CASES = [("ce", "none", 0.0), ("ce", "free", 0.0), ("ce", "reg", 5e-3), ("mse", "free", 0.0), ("mse", "reg", 5e-3)]


def _check_solution(p: UFMProblem, x: np.ndarray) -> dict:
    th = T.global_minimum(p)
    W, H, b = p.unpack(x)
    wn, hn = np.sum(W * W), np.sum(H * H)
    assert abs(p.value(x) - th.value) < 1e-6
    assert wn == pytest.approx(th.w_norm_sq, rel=1e-5)
    assert hn == pytest.approx(th.h_norm_sq, rel=1e-5)
    assert abs(p.lambda_w * wn - p.lambda_h * hn) < 1e-8
    return {"th": th, "W": W, "H": H, "b": b, **T.nc_metrics(W, H, p.labels(), b)}


@pytest.mark.parametrize("loss,bias,lb", ETF_CASES)
@pytest.mark.parametrize("d_offset", [-1, 0, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solution_matches_closed_form_and_is_a_simplex_etf(loss, bias, lb, d_offset, seed):
    K, n = 5, 3
    p = UFMProblem(loss, K, K + d_offset, n, 1e-2, 2e-2, lb, bias)
    r = _check_solution(p, solve_lbfgs(p, seed=seed).x)
    assert r["th"].geometry == "simplex_etf"
    for key in ("nc1", "nc2", "nc3"):
        assert r[key] < 1e-6, key
    # rows of W: equal norms, pairwise cosine -1/(K-1); NC3 duality h_bar_k = sqrt(lw/(n lh)) w^k
    assert T.simplex_etf_check(r["W"], atol=1e-6)["is_etf"]
    assert np.sum(r["W"] ** 2, axis=1) == pytest.approx(np.full(K, r["th"].row_norm_sq), rel=1e-5)
    means = T.class_means(r["H"], p.labels(), K)
    np.testing.assert_allclose(means, np.sqrt(p.lambda_w / (n * p.lambda_h)) * r["W"].T, atol=1e-6)
    if loss == "mse" and bias != "none":
        np.testing.assert_allclose(r["b"], np.full(K, 1 / (K * (1 + lb))), atol=1e-7)
    if loss == "ce" and bias == "reg":
        np.testing.assert_allclose(r["b"], 0.0, atol=1e-7)
    if loss == "ce" and bias == "free":
        assert np.ptp(r["b"]) < 1e-7  # b = beta 1, beta arbitrary


@pytest.mark.parametrize("seed", [0, 1])
def test_bias_free_mse_is_an_orthogonal_frame_not_an_etf(seed):
    K, n = 4, 3
    p = UFMProblem("mse", K, K + 1, n, 1e-2, 1e-2, 0.0, "none")
    r = _check_solution(p, solve_lbfgs(p, seed=seed).x)
    assert r["th"].geometry == "orthogonal_frame"
    s = 1 - K * p.c
    Hbar = T.class_means(r["H"], p.labels(), K)
    np.testing.assert_allclose(r["W"] @ Hbar, s * np.eye(K), atol=1e-7)  # uncentred means
    assert T.orthogonal_frame_deviation(r["W"]) < 1e-6
    assert r["nc2"] > 0.1  # W W^T ~ I, not the ETF Gram
    assert r["nc1"] < 1e-6


def test_reference_numbers_of_the_spec():
    """K = 10, n = 5, lw = lh = 5e-3 (spec table, section 2)."""
    for loss, bias, lb, f_ref, row_ref in [
        ("ce", "free", 0.0, 0.547541, 8.829765),
        ("ce", "reg", 5e-3, 0.547541, 8.829765),
        ("mse", "free", 0.0, 0.094998, 1.787461),
        ("mse", "reg", 5e-3, 0.095247, 1.787461),
    ]:
        p = UFMProblem(loss, 10, 10, 5, 5e-3, 5e-3, lb, bias)
        th = T.global_minimum(p)
        assert th.value == pytest.approx(f_ref, abs=1e-6)
        assert th.row_norm_sq == pytest.approx(row_ref, abs=1e-6)
        _check_solution(p, solve_lbfgs(p, seed=0).x)
    # d = 5 < K - 1 for MSE: Eckart-Young value of the spec table (0.252777 with c rounded)
    p = UFMProblem("mse", 10, 5, 5, 5e-3, 5e-3, 0.0, "free")
    assert T.global_minimum(p).value == pytest.approx(0.252777, abs=2e-6)
    assert solve_lbfgs(p, seed=0).value == pytest.approx(T.global_minimum(p).value, abs=1e-9)


def test_ce_below_k_minus_one_is_not_covered():
    p = UFMProblem("ce", 6, 3, 2, 1e-2, 1e-2)
    assert not T.covers(p)[0]
    with pytest.raises(T.TheoryNotCovered):
        T.global_minimum(p)


@pytest.mark.parametrize("loss,bias,lb", ETF_CASES + [("mse", "none", 0.0)])
@pytest.mark.parametrize("factor", [0.5, 0.9, 1.1, 2.0])
def test_collapse_to_zero_exactly_when_threshold_is_crossed(loss, bias, lb, factor):
    K, n = 4, 2
    lam = factor / (K * np.sqrt(n))  # lw = lh = lam  ->  K c = factor
    p = UFMProblem(loss, K, K, n, lam, lam, lb, bias)
    assert T.is_collapsed(p) == (factor >= 1)
    th = T.global_minimum(p)
    sol = solve_lbfgs(p, seed=0)
    W, H, _ = p.unpack(sol.x)
    total = np.sum(W * W) + np.sum(H * H)
    if factor >= 1:
        assert th.w_norm_sq == 0 and th.geometry == "zero"
        assert total < 1e-10
        expected = np.log(K) if loss == "ce" else {"none": 0.5, "free": (K - 1) / (2 * K)}.get(
            bias, (K - 1) / (2 * K) + lb / (1 + lb) / (2 * K))
        assert th.value == pytest.approx(expected, abs=1e-12)
    else:
        assert th.w_norm_sq > 0
        assert np.sum(W * W) == pytest.approx(th.w_norm_sq, rel=1e-5)
    assert sol.value == pytest.approx(th.value, abs=1e-9)


def test_large_bias_decay_moves_mse_means_off_the_etf():
    """lb/(1+lb) > K c and d >= K: the mean mode is fitted by the features (derived here, see theory.py)."""
    K, n = 4, 2
    p = UFMProblem("mse", K, K, n, 1e-2, 1e-2, 1.0, "reg")
    th = T.global_minimum(p)
    assert th.geometry == "etf_plus_mean" and th.rank == K
    x = solve_lbfgs(p, seed=0).x
    _check_solution(p, x)
    # and with d = K-1 the mean mode cannot fit: back to a centred ETF
    p1 = p.with_dim(K - 1)
    assert T.global_minimum(p1).geometry == "simplex_etf"
    r = _check_solution(p1, solve_lbfgs(p1, seed=0).x)
    assert r["nc2"] < 1e-6


@settings(max_examples=12, deadline=None)
@given(
    loss=st.sampled_from(["ce", "mse"]),
    bias=st.sampled_from(["none", "free", "reg"]),
    K=st.integers(2, 5),
    d_extra=st.integers(-1, 2),
    n=st.integers(1, 3),
    lw=st.floats(1e-3, 1e-1),
    lh=st.floats(1e-3, 1e-1),
)
def test_closed_form_value_is_the_minimum_found_by_lbfgs(loss, bias, K, d_extra, n, lw, lh):
    lb = 1e-2 if bias == "reg" else 0.0
    d = max(1, K + d_extra)
    if loss == "mse" and bias == "none":
        d = max(d, K)
    p = UFMProblem(loss, K, d, n, lw, lh, lb, bias)
    if not T.covers(p)[0]:
        return
    th = T.global_minimum(p)
    best = min(solve_lbfgs(p, seed=s).value for s in range(2))
    assert best == pytest.approx(th.value, abs=1e-7)


def test_nc_metrics_invariances_and_simplex_check():
    rng = np.random.default_rng(0)
    K, d, n = 4, 6, 3
    labels = np.repeat(np.arange(K), n)
    W = rng.standard_normal((K, d))
    H = rng.standard_normal((d, K * n))
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a = T.nc_metrics(W, H, labels)
    b = T.nc_metrics(3.0 * W @ Q, 0.5 * Q.T @ H, labels)
    for k in ("nc1", "nc2", "nc3"):
        assert a[k] == pytest.approx(b[k], rel=1e-10)
    assert a["nc2"] > 0.1
    etf = np.sqrt(K / (K - 1)) * (np.eye(K) - 1 / K)
    assert T.simplex_etf_check(etf)["is_etf"]
    assert not T.simplex_etf_check(np.eye(K))["is_etf"]
    assert T.nc_metrics(etf, np.repeat(etf.T, n, axis=1), labels)["nc2"] < 1e-12
    z = T.nc_metrics(np.zeros((K, d)), np.zeros((d, K * n)), labels)
    assert np.isnan(z["nc1"]) and np.isnan(z["nc2"])
