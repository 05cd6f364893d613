"""Critical points of the UFM: strict-saddle certificates, optimum symmetry counts, escape by GD."""

import numpy as np
import pytest

from transferlens.ufm import theory as T
from transferlens.ufm.landscape import (
    certify, embed, escape_run, lanczos_lambda_min, origin_point, padded_block_prediction, padded_optimum,
)
from transferlens.ufm.objectives import UFMProblem
from transferlens.ufm.solver import solve_lbfgs

ALL_CASES = [
    ("ce", "none", 0.0), ("ce", "free", 0.0), ("ce", "reg", 1e-2),
    ("mse", "none", 0.0), ("mse", "free", 0.0), ("mse", "reg", 1e-2),
]


@pytest.mark.parametrize("loss,bias,lb", ALL_CASES)
def test_origin_is_strict_saddle_with_closed_form_spectrum(loss, bias, lb):
    p = UFMProblem(loss, 4, 4, 2, 1e-2, 3e-2, lb, bias)
    x0 = origin_point(p)
    c = certify(p, x0)
    assert c.grad_norm < 1e-14
    assert c.kind == "strict saddle"
    # lambda_min = [(lw+lh) - sqrt((lw-lh)^2 + 4/(K^2 n))]/2, from Lanczos and from the dense Hessian
    assert c.lambda_min == pytest.approx(T.origin_lambda_min(p), abs=1e-10)
    assert c.lambda_min_dense == pytest.approx(T.origin_lambda_min(p), abs=1e-12)
    assert c.n_negative == T.origin_negative_count(p)
    expected_neg = p.d * (p.K - 1) + (p.d if (loss == "mse" and bias == "none") else 0)
    assert c.n_negative == expected_neg
    np.testing.assert_allclose(c.spectrum, T.origin_hessian_spectrum(p), atol=1e-12)


def test_origin_reference_value_of_the_spec():
    """K = 10, n = 5, lw = lh = 5e-3: lambda_min = -0.0397214 with 90 negative eigenvalues (both losses)."""
    for loss in ("ce", "mse"):
        p = UFMProblem(loss, 10, 10, 5, 5e-3, 5e-3, 0.0, "free")
        assert lanczos_lambda_min(p, origin_point(p)) == pytest.approx(-0.0397214, abs=1e-7)
        assert T.origin_negative_count(p) == 90


def test_origin_becomes_the_minimum_past_the_threshold():
    K, n = 4, 2
    lam = 1.2 / (K * np.sqrt(n))
    p = UFMProblem("ce", K, K, n, lam, lam, 1e-2, "reg")
    assert T.origin_lambda_min(p) > 0
    c = certify(p, origin_point(p))
    assert c.kind == "local minimum (PSD)" and c.n_negative == 0


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("d_low", [1, 2])
def test_zero_padded_lower_dim_optimum_is_a_strict_saddle(loss, d_low):
    p = UFMProblem(loss, 5, 5, 2, 1e-2, 1e-2, 0.0, "free")
    xp, x_low = padded_optimum(p, d_low, seed=0)
    c = certify(p, xp)
    pred = padded_block_prediction(p, xp, d_low)
    assert c.grad_norm < 1e-8
    assert c.kind == "strict saddle"
    assert c.lambda_min == pytest.approx(pred["lambda_min"], abs=1e-9)
    assert c.n_negative == pred["n_negative"]
    assert p.value(xp) == pytest.approx(p.with_dim(d_low).value(x_low), abs=1e-14)
    if loss == "mse":  # unfitted centred modes keep the origin's curvature: (K-1-d')(d-d') negatives
        assert c.lambda_min == pytest.approx(T.origin_lambda_min(p), abs=1e-9)
        assert c.n_negative == (p.K - 1 - d_low) * (p.d - d_low)
    assert p.value(xp) > T.global_minimum(p).value + 1e-3


@pytest.mark.parametrize(
    "loss,bias,lb,d",
    [("ce", "free", 0.0, 4), ("ce", "reg", 1e-2, 4), ("ce", "free", 0.0, 6), ("ce", "none", 0.0, 3),
     ("mse", "free", 0.0, 4), ("mse", "reg", 1e-2, 6), ("mse", "none", 0.0, 5)],
)
def test_optimum_is_psd_with_the_symmetry_zero_count(loss, bias, lb, d):
    p = UFMProblem(loss, 4, d, 2, 1e-2, 1e-2, lb, bias)
    x = solve_lbfgs(p, seed=1).x
    c = certify(p, x)
    assert c.kind == "local minimum (PSD)"
    assert c.lambda_min >= -1e-8
    r = T.global_minimum(p).rank
    expected = d * (d - 1) // 2 - (d - r) * (d - r - 1) // 2 + (1 if (loss == "ce" and bias == "free") else 0)
    assert T.optimum_zero_eigenvalue_count(p) == expected
    assert c.n_zero == expected
    # the next eigenvalue is well separated from zero: the count is not a tolerance artefact
    assert np.sort(np.abs(c.spectrum))[expected] > 1e-4


def test_symmetry_count_reference_values_of_the_spec():
    mk = lambda loss, d, bias="reg", lb=5e-3: UFMProblem(loss, 10, d, 5, 5e-3, 5e-3, lb, bias)
    assert T.optimum_zero_eigenvalue_count(mk("mse", 10)) == 45
    assert T.optimum_zero_eigenvalue_count(mk("ce", 10, "free", 0.0)) == 46
    assert T.optimum_zero_eigenvalue_count(mk("mse", 20)) == 135
    assert T.optimum_zero_eigenvalue_count(mk("ce", 20, "free", 0.0)) == 136
    assert T.optimum_zero_eigenvalue_count(mk("mse", 9)) == 36


@pytest.mark.parametrize("loss,lr", [("ce", 0.5), ("mse", 1.0)])
def test_gradient_descent_escapes_the_origin_in_log_one_over_eps_time(loss, lr):
    p = UFMProblem(loss, 4, 4, 2, 1e-2, 1e-2, 0.0, "free")
    f_star = T.global_minimum(p).value
    x0 = origin_point(p)
    # exactly at the saddle GD cannot move (it is a critical point) ...
    still = escape_run(p, x0, eps=0.0, lr=lr, steps=100, f_star=f_star, with_nc=False)
    assert still.escape_step is None and still.final_value == pytest.approx(p.value(x0), abs=1e-15)
    # ... any small noise escapes, and reaches the global minimum
    runs = [escape_run(p, x0, eps=eps, lr=lr, steps=20000, f_star=f_star, with_nc=False) for eps in (1e-4, 1e-6, 1e-8)]
    for r in runs:
        assert r.escape_step is not None and r.reach_step is not None
        assert r.final_value - f_star <= 1e-6
    # escape time grows linearly in log(1/eps), at rate ln(100)/(lr |lambda_min|) per factor 100
    rate = np.log(100) / (lr * -T.origin_lambda_min(p))
    steps = [r.escape_step for r in runs]
    for a, b in zip(steps, steps[1:]):
        assert b - a == pytest.approx(rate, rel=0.3)


def test_gradient_descent_escapes_a_padded_saddle_to_the_etf():
    p = UFMProblem("mse", 4, 4, 2, 1e-2, 1e-2, 0.0, "free")
    xp, _ = padded_optimum(p, 1, seed=0)
    f_star = T.global_minimum(p).value
    r = escape_run(p, xp, eps=1e-6, lr=1.0, steps=5000, f_star=f_star, with_nc=True)
    assert r.reach_step is not None
    assert r.trajectory.nc[0]["nc2"] > 0.5  # started far from an ETF
    assert r.trajectory.nc[-1]["nc2"] < 1e-2  # ended close to it
    x_final = solve_lbfgs(p, x0=r.trajectory.x).x
    W, H, b = p.unpack(x_final)
    assert T.nc_metrics(W, H, p.labels(), b)["nc2"] < 1e-6


def test_embed_rejects_mismatched_problems():
    from transferlens.errors import UsageError

    p = UFMProblem("ce", 4, 4, 2, 1e-2, 1e-2)
    low = UFMProblem("mse", 4, 2, 2, 1e-2, 1e-2)
    with pytest.raises(UsageError):
        embed(p, low, np.zeros(low.n_params))
    with pytest.raises(UsageError):
        padded_optimum(p, 4)
