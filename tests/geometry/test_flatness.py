"""Hessian trace / top eigenvalue vs the explicit Hessian of a quadratic and of a small MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from transferlens.errors import InputError
from transferlens.geometry.flatness import HessianOperator, flatness, hessian_top_eigenvalue, hessian_trace


def _quadratic(a_np, seed=0):
    a = torch.tensor(a_np)
    theta = torch.randn(a.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64, requires_grad=True)
    b = torch.randn(a.shape[0], generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return HessianOperator.from_closure(lambda: 0.5 * theta @ a @ theta + b @ theta + torch.sin(b).sum(), [theta])


def _sym(n=12, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return (m + m.T) / 2 + shift * np.eye(n)


def test_quadratic_trace_and_eigenvalues():
    a = _sym(shift=1.0)
    op = _quadratic(a)
    tr = hessian_trace(op, n_probes=400, seed=1)
    assert abs(tr.value - np.trace(a)) < 3 * tr.se
    lam = np.linalg.eigvalsh(a)
    lan = hessian_top_eigenvalue(op, method="lanczos", tol=1e-12)
    assert lan.converged and lan.value == pytest.approx(lam[-1], rel=1e-9)
    dominant = lam[np.argmax(np.abs(lam))]
    pw = hessian_top_eigenvalue(op, method="power", tol=1e-13, n_iter=5000)
    assert pw.converged and pw.value == pytest.approx(dominant, rel=1e-6)


def test_rademacher_trace_is_exact_for_a_diagonal_hessian():
    d = np.diag(np.linspace(-2.0, 5.0, 9))
    tr = hessian_trace(_quadratic(d), n_probes=5)
    assert tr.value == pytest.approx(np.trace(d), abs=1e-12) and tr.se == pytest.approx(0.0, abs=1e-12)


def test_hvp_equals_explicit_hessian_product():
    a = _sym(n=7, seed=3)
    op = _quadratic(a, seed=2)
    v = np.random.default_rng(0).normal(size=7)
    np.testing.assert_allclose(op.matvec_flat(v), a @ v, rtol=1e-12, atol=1e-12)


def _mlp_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (30,))
    crit = nn.CrossEntropyLoss()
    params = dict(model.named_parameters())
    names, shapes = list(params), [p.shape for p in params.values()]
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])

    def loss_of(f):
        d, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            d[n] = f[i : i + k].reshape(s)
            i += k
        return crit(functional_call(model, d, (x,)), y)

    h = torch.func.hessian(loss_of)(flat).detach().numpy()
    return model, crit, x, y, h


def test_small_mlp_matches_explicit_hessian():
    model, crit, x, y, h = _mlp_problem()
    op = HessianOperator.from_model(model, crit, (x, y))
    lam = np.linalg.eigvalsh(h)
    tr = hessian_trace(op, n_probes=120, seed=0)
    assert abs(tr.value - np.trace(h)) < 3 * tr.se
    top = hessian_top_eigenvalue(op, tol=1e-12)
    assert top.value == pytest.approx(lam[-1], rel=1e-8)
    pw = hessian_top_eigenvalue(op, method="power", tol=1e-12, n_iter=3000)
    assert pw.value == pytest.approx(lam[np.argmax(np.abs(lam))], rel=1e-6)
    v = np.random.default_rng(1).normal(size=h.shape[0])
    np.testing.assert_allclose(op.matvec_flat(v), h @ v, rtol=1e-10, atol=1e-12)


def test_several_batches_give_the_full_data_hessian():
    model, crit, x, y, h = _mlp_problem(seed=1)
    op = HessianOperator.from_model(model, crit, [(x[:7], y[:7]), (x[7:20], y[7:20]), (x[20:], y[20:])])
    v = np.random.default_rng(2).normal(size=h.shape[0])
    np.testing.assert_allclose(op.matvec_flat(v), h @ v, rtol=1e-10, atol=1e-12)


def test_from_model_uses_eval_mode_and_restores_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Dropout(0.5), nn.Linear(5, 2)).double()
    model.train()
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 2, (10,))
    op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (x, y))
    v = np.ones(op.dim)
    a, b = op.matvec_flat(v), HessianOperator.from_model(model, nn.CrossEntropyLoss(), [(x, y)]).matvec_flat(v)
    np.testing.assert_allclose(a, b, rtol=1e-12)  # deterministic: dropout off
    assert model.training
    rep = flatness(model, nn.CrossEntropyLoss(), (x, y), n_probes=5)
    assert rep["n_params"] == op.dim and np.isfinite(rep["hessian_trace"])


def test_tolerance_stops_early():
    op = _quadratic(_sym(shift=20.0, seed=4))
    tr = hessian_trace(op, n_probes=500, tol=1e-2, min_probes=10)
    assert 10 <= tr.n_probes < 500


def test_bad_inputs():
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(InputError, match="scalar"):
        HessianOperator.from_closure(lambda: w * 2, [w]).matvec([torch.ones(3, dtype=torch.float64)])
    with pytest.raises(InputError, match="requires_grad"):
        HessianOperator.from_closure(lambda: w.sum(), [torch.ones(3)])
    with pytest.raises(InputError, match="NaN"):
        HessianOperator.from_closure(lambda: (w * float("nan")).sum(), [w]).matvec([torch.ones(3, dtype=torch.float64)])
    with pytest.raises(InputError, match="empty"):
        HessianOperator.from_model(nn.Linear(2, 2), nn.MSELoss(), [])
    with pytest.raises(InputError, match="NaN"):
        HessianOperator.from_model(nn.Linear(2, 2), nn.MSELoss(), (torch.full((2, 2), float("nan")), torch.ones(2, 2)))
    with pytest.raises(InputError, match="method"):
        hessian_top_eigenvalue(_quadratic(_sym(n=3)), method="qr")
    with pytest.raises(InputError, match="n_probes"):
        hessian_trace(_quadratic(_sym(n=3)), n_probes=0)
