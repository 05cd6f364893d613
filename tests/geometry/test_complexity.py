"""Geometric complexity: exact vs finite differences, closed form for linear maps, unbiasedness and
1/√probes error of the stochastic estimator, BatchNorm handling, tapping, and the regulariser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from transferlens.errors import InputError
from transferlens.geometry.complexity import (
    GCRegularizer,
    LayerTap,
    gc_exact,
    gc_penalty,
    gc_stochastic,
    geometric_complexity,
    per_class_gc,
)


def _mlp(seed=0, d_in=5, h=7, d_out=3, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, h), nn.Tanh(), nn.Linear(h, h), nn.Softplus(), nn.Linear(h, d_out)).to(dtype)


def _x(n=6, d=5, seed=1, dtype=torch.float64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _fd_gc(f, x, eps=1e-6):
    """Central finite-difference Jacobians, one coordinate at a time."""
    tot = 0.0
    with torch.no_grad():
        for xi in x:
            cols = []
            for j in range(xi.numel()):
                e = torch.zeros_like(xi)
                e[j] = eps
                cols.append((f((xi + e)[None]) - f((xi - e)[None])).reshape(-1) / (2 * eps))
            tot += torch.stack(cols, dim=1).pow(2).sum().item()
    return tot / x.shape[0]


@pytest.mark.parametrize("method", ["vmap", "rows"])
def test_exact_gc_equals_finite_differences(method):
    m, x = _mlp(), _x()
    got = gc_exact(m, x, method=method, batch_size=4)
    assert got.value == pytest.approx(_fd_gc(m, x), abs=1e-6)
    assert got.se == 0.0 and got.n_samples == 6 and got.per_sample.shape == (6,)


def test_gc_of_linear_map_is_frobenius_norm_squared():
    a = torch.randn(4, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = _x(n=5, d=9)
    assert gc_exact(lambda z: z @ a.T, x).value == pytest.approx(a.pow(2).sum().item(), rel=1e-12)
    # conventions: input scaling x -> s·x (f(x) = A s x) multiplies GC by s²; no ½ factor
    assert gc_exact(lambda z: 3.0 * z @ a.T, x).value == pytest.approx(9 * a.pow(2).sum().item(), rel=1e-12)
    lin = nn.Linear(9, 4, bias=True).double()
    assert gc_exact(lin, x, method="rows").value == pytest.approx(lin.weight.pow(2).sum().item(), rel=1e-12)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian", "sphere"])
def test_stochastic_gc_is_unbiased(probe):
    m, x = _mlp(seed=3), _x(n=8, seed=4)
    exact = gc_exact(m, x).value
    est = np.array([gc_stochastic(m, x, n_probes=4, probe=probe, seed=s).value for s in range(60)])
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - exact) < 3 * se, (est.mean(), exact, se)


def test_stochastic_error_shrinks_like_inverse_sqrt_probes_and_se_is_calibrated():
    m, x = _mlp(seed=5), _x(n=8, seed=6)
    exact = gc_exact(m, x).value
    rmse, mean_se = {}, {}
    for p in (2, 32):
        runs = [gc_stochastic(m, x, n_probes=p, seed=1000 * p + s) for s in range(50)]
        rmse[p] = np.sqrt(np.mean([(r.value - exact) ** 2 for r in runs]))
        mean_se[p] = np.mean([r.se for r in runs])
    ratio = rmse[2] / rmse[32]  # 1/√probes predicts √16 = 4
    assert 2.8 < ratio < 5.7, ratio
    for p in (2, 32):  # the reported SE matches the actual error spread
        assert 0.6 < mean_se[p] / rmse[p] < 1.6, (p, mean_se[p], rmse[p])


def test_vectorised_probes_equal_the_plain_loop():
    m, x = _mlp(seed=12), _x(n=7, seed=13)
    loop = gc_stochastic(m, x, n_probes=11, probe_chunk=1, seed=5, batch_size=3)
    vec = gc_stochastic(m, x, n_probes=11, probe_chunk=4, seed=5, batch_size=3)
    np.testing.assert_allclose(vec.per_sample, loop.per_sample, rtol=1e-12)
    assert vec.se == pytest.approx(loop.se, rel=1e-10)


def test_input_subsampling_is_unbiased_and_reports_total_se():
    m, x = _mlp(seed=7), _x(n=40, seed=8)
    exact = gc_exact(m, x).value
    runs = [gc_stochastic(m, x, n_probes=2, n_samples=10, seed=s) for s in range(60)]
    vals = np.array([r.value for r in runs])
    assert abs(vals.mean() - exact) < 3 * vals.std(ddof=1) / np.sqrt(vals.size)
    assert all(r.n_samples == 10 for r in runs)
    assert 0.5 < np.mean([r.se for r in runs]) / vals.std(ddof=1) < 2.0


def test_batchnorm_model_uses_eval_mode_and_restores_training():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()
    m.train()
    m(_x(n=32, seed=9) * 2 + 1)  # give the running statistics non-trivial values
    x = _x(n=6, seed=10)
    whole = gc_exact(m, x, batch_size=6)
    single = gc_exact(m, x, batch_size=1, method="rows")
    assert m.training and m[1].training
    np.testing.assert_allclose(whole.per_sample, single.per_sample, rtol=1e-12)
    m.eval()
    assert whole.value == pytest.approx(_fd_gc(m, x), abs=1e-6)
    m.train()
    running = m[1].running_mean.clone()
    gc_stochastic(m, x, n_probes=3)
    assert torch.equal(running, m[1].running_mean) and m.training


def test_layer_tap_stops_at_layer_and_matches_truncated_model():
    class Boom(nn.Module):
        def forward(self, z):
            raise AssertionError("layers after the tap must not run")

    m = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), Boom()).double()
    tap = LayerTap(m, "2")
    x = _x()
    torch.testing.assert_close(tap(x), m[2](m[1](m[0](x))))
    ref = gc_exact(nn.Sequential(m[0], m[1], m[2]), x).value
    assert gc_exact(tap, x).value == pytest.approx(ref, rel=1e-12)
    with pytest.raises(InputError, match="not found"):
        LayerTap(m, "nope")


def test_conv_layer_tap_with_vmap_and_rows_agree():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2)).double()
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64)
    a = gc_exact(LayerTap(m, "3"), x, method="vmap")
    b = gc_exact(LayerTap(m, "3"), x, method="rows")
    np.testing.assert_allclose(a.per_sample, b.per_sample, rtol=1e-10)


def test_per_class_gc_and_dispatch():
    m, x = _mlp(), _x(n=6)
    res = geometric_complexity(m, x)
    y = np.array([0, 1, 0, 1, 1, 0])
    pc = per_class_gc(res, y)
    np.testing.assert_allclose(pc, [res.per_sample[y == 0].mean(), res.per_sample[y == 1].mean()])
    st = geometric_complexity(m, x, n_probes=3, seed=1)
    assert st.n_probes == 3 and st.method.startswith("hutchinson")
    # iterables of (x, y) batches are accepted
    assert gc_exact(m, [(x[:4], None), (x[4:], None)]).value == pytest.approx(res.value, rel=1e-12)


def test_penalty_is_unbiased_and_its_gradient_is_2A_for_a_linear_map():
    a = torch.randn(3, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    x = _x(n=4, d=6)
    gen = torch.Generator().manual_seed(0)
    vals, grads = [], []
    for _ in range(400):
        p = gc_penalty(lambda z: z @ a.T, x, n_probes=1, generator=gen)
        (g,) = torch.autograd.grad(p, a)
        vals.append(p.item())
        grads.append(g)
    vals = np.array(vals)
    target = a.pow(2).sum().item()
    assert abs(vals.mean() - target) < 3 * vals.std(ddof=1) / np.sqrt(vals.size)
    gmean = torch.stack(grads).mean(0)
    gse = torch.stack(grads).std(0) / np.sqrt(len(grads))
    assert torch.all((gmean - 2 * a.detach()).abs() < 4 * gse + 1e-12)


def test_regularizer_lowers_gc_and_leaves_batchnorm_stats_alone():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 4)).double()
    x = _x(n=32, seed=11)
    before = gc_exact(m, x).value
    m.train()
    running = m[1].running_mean.clone()
    reg = GCRegularizer(m, weight=1.0, n_probes=2, seed=0)
    opt = torch.optim.SGD(m.parameters(), lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        reg(x).backward()
        opt.step()
    assert torch.equal(running, m[1].running_mean) and m.training and m[1].training
    after = gc_exact(m, x).value
    assert after < 0.7 * before, (before, after)
    assert GCRegularizer(m, weight=0.0)(x).item() == 0.0


def test_regularizer_is_reproducible_by_seed():
    m, x = _mlp(), _x()
    a = GCRegularizer(m, 0.5, seed=3)(x).item()
    b = GCRegularizer(m, 0.5, seed=3)(x).item()
    c = GCRegularizer(m, 0.5, seed=4)(x).item()
    assert a == b and a != c


def test_bad_inputs():
    m = _mlp()
    x = _x()
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        gc_exact(m, bad)
    with pytest.raises(InputError, match="floating"):
        gc_exact(m, torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(InputError, match="outputs"):
        gc_exact(lambda z: z.sum(), x)
    with pytest.raises(InputError, match="n_probes"):
        gc_stochastic(m, x, n_probes=0)
    with pytest.raises(InputError, match="probe"):
        gc_stochastic(m, x, probe="uniform")
    with pytest.raises(InputError, match="method"):
        gc_exact(m, x, method="jvp")
    with pytest.raises(InputError, match="one tensor"):
        gc_stochastic(m, [x], n_samples=2)
    with pytest.raises(InputError, match="weight"):
        GCRegularizer(m, weight=-1.0)
    with pytest.raises(InputError, match="aligned"):
        per_class_gc(gc_exact(m, x), np.zeros(3, int))
