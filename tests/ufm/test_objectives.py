"""Gradients and Hessian-vector products of the UFM objectives against finite differences and autograd."""

import numpy as np
import pytest
import torch

from transferlens.errors import UsageError
from transferlens.ufm.objectives import UFMProblem

CASES = [
    ("ce", "none", 0.0), ("ce", "free", 0.0), ("ce", "reg", 3e-2),
    ("mse", "none", 0.0), ("mse", "free", 0.0), ("mse", "reg", 3e-2),
]


def _problem(loss, bias, lb, K=4, d=3, n=2):
    return UFMProblem(loss, K, d, n, 2e-2, 3e-2, lb, bias)


def _torch_value(p: UFMProblem, x: torch.Tensor) -> torch.Tensor:
    K, d, N = p.K, p.d, p.N
    W = x[: K * d].reshape(K, d)
    H = x[K * d : K * d + d * N].reshape(d, N)
    b = x[K * d + d * N :] if p.has_bias else torch.zeros(K, dtype=x.dtype)
    Z = W @ H + b[:, None]
    Y = torch.as_tensor(p.targets())
    if p.loss == "ce":
        data = (torch.logsumexp(Z, 0) - (Z * Y).sum(0)).sum() / N
    else:
        data = 0.5 * ((Z - Y) ** 2).sum() / N
    return data + p.lambda_w / 2 * (W**2).sum() + p.lambda_h / 2 * (H**2).sum() + p.lambda_b / 2 * (b**2).sum()


@pytest.mark.parametrize("loss,bias,lb", CASES)
def test_gradient_matches_central_differences(loss, bias, lb):
    p = _problem(loss, bias, lb)
    x = p.random_init(3, scale=0.7) + 0.1
    g = p.grad(x)
    eps = 1e-6
    fd = np.array([(p.value(x + eps * e) - p.value(x - eps * e)) / (2 * eps) for e in np.eye(p.n_params)])
    np.testing.assert_allclose(g, fd, atol=1e-8)


@pytest.mark.parametrize("loss,bias,lb", CASES)
def test_hvp_matches_finite_difference_of_gradient(loss, bias, lb):
    p = _problem(loss, bias, lb)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p.n_params)
    for _ in range(3):
        v = rng.standard_normal(p.n_params)
        eps = 1e-5
        fd = (p.grad(x + eps * v) - p.grad(x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(p.hvp(x, v), fd, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("loss,bias,lb", CASES)
def test_value_gradient_hessian_match_torch_autograd(loss, bias, lb):
    p = _problem(loss, bias, lb)
    x = np.random.default_rng(1).standard_normal(p.n_params)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    f = _torch_value(p, xt)
    (g,) = torch.autograd.grad(f, xt)
    Ht = torch.autograd.functional.hessian(lambda z: _torch_value(p, z), xt.detach()).numpy()
    assert p.value(x) == pytest.approx(f.item(), abs=1e-12)
    np.testing.assert_allclose(p.grad(x), g.numpy(), atol=1e-12)
    np.testing.assert_allclose(p.hessian(x), Ht, atol=1e-11)


def test_dense_hessian_is_symmetric_and_consistent_with_batched_hvp():
    p = _problem("ce", "free", 0.0)
    x = p.random_init(0, 1.0)
    Hs = p.hessian(x, chunk=7)
    V = np.random.default_rng(2).standard_normal((p.n_params, 5))
    np.testing.assert_allclose(Hs @ V, p.hvp_batch(x, V), atol=1e-12)
    np.testing.assert_allclose(Hs, Hs.T, atol=0)


def test_pack_unpack_roundtrip_and_bias_absent():
    p = _problem("mse", "none", 0.0)
    W = np.arange(p.K * p.d, dtype=float).reshape(p.K, p.d)
    H = -np.arange(p.d * p.N, dtype=float).reshape(p.d, p.N)
    x = p.pack(W, H)
    assert x.size == p.n_params == p.K * p.d + p.d * p.N
    W2, H2, b2 = p.unpack(x)
    np.testing.assert_array_equal(W2, W)
    np.testing.assert_array_equal(H2, H)
    np.testing.assert_array_equal(b2, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loss="hinge", K=3, d=3, n=2, lambda_w=1e-2, lambda_h=1e-2),
        dict(loss="ce", K=1, d=3, n=2, lambda_w=1e-2, lambda_h=1e-2),
        dict(loss="ce", K=3, d=3, n=2, lambda_w=0.0, lambda_h=1e-2),
        dict(loss="ce", K=3, d=3, n=2, lambda_w=1e-2, lambda_h=float("nan")),
        dict(loss="ce", K=3, d=3, n=2, lambda_w=1e-2, lambda_h=1e-2, bias="reg", lambda_b=0.0),
        dict(loss="ce", K=3, d=3, n=2, lambda_w=1e-2, lambda_h=1e-2, bias="free", lambda_b=1e-2),
        dict(loss="ce", K=3, d=3, n=2, lambda_w=1e-2, lambda_h=1e-2, bias="maybe"),
    ],
)
def test_bad_problem_definitions_raise_usage_error(kwargs):
    with pytest.raises(UsageError):
        UFMProblem(**kwargs)


def test_wrong_vector_shape_raises():
    p = _problem("ce", "free", 0.0)
    with pytest.raises(UsageError):
        p.value(np.zeros(p.n_params + 1))
