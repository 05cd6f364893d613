"""Baselines: TPGM projection, L2-SP penalty, LP-FT helpers, WiSE-FT interpolation, optimizer factory."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transferlens.errors import InputError, UsageError
from transferlens.finetune.optim import TPGM, FTPAdamW
from transferlens.finetune.optim.ftp import row_l1
from transferlens.finetune.recipes import (
    fit_linear_probe_head,
    freeze_all_but,
    interpolate_state_dicts,
    make_optimizer,
    wise_ft_sweep,
)
from transferlens.finetune.regularizers import L2SP

torch.set_num_threads(1)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 12), nn.BatchNorm1d(12), nn.Tanh(), nn.Linear(12, 3))


def perturb(model: nn.Module, scale: float, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def batches(seed: int, n: int = 24) -> itertools.cycle:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    return itertools.cycle([(x, y)])


# ----------------------------------------------------------------------------------------------- TPGM


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000), norm=st.sampled_from(["mars", "l2"]), iters=st.integers(1, 5))
def test_tpgm_projection_constraint_holds(seed: int, norm: str, iters: int) -> None:
    model = mlp(seed)
    anchors = {n: p.detach().clone() for n, p in model.named_parameters()}
    tpgm = TPGM(model, exclude=["3.*"], norm=norm)
    perturb(model, 0.5, seed)
    tpgm.step(batches(seed), max_iters=iters)
    for name, r in tpgm.radii_by_name().items():
        p = dict(model.named_parameters())[name]
        c = p.detach() - anchors[name]
        dist = torch.linalg.vector_norm(c) if norm == "l2" else row_l1(c)
        assert r >= 1e-8
        assert float(dist.max()) <= r * (1 + 1e-5) + 1e-6
    # the head is excluded and untouched by the projection
    assert not torch.equal(model[3].weight, anchors["3.weight"])


def test_tpgm_init_half_min_norm_and_first_step_follows_finite_differences() -> None:
    """γ starts at min(n)/2; the first Adam step moves each radius by -lr·sign(dL/dγ) (finite differences
    through the projection, model in eval mode), and further fitting lowers the validation loss."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3))
    model = nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3))
    model.load_state_dict(teacher.state_dict())
    perturb(model, 0.4, seed=7)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 5, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    tpgm = TPGM(model, anchors=teacher.state_dict(), lr=1e-2)
    cs, ns = tpgm._deviations()
    r0 = tpgm.radii_by_name()
    for name, c, n in zip(tpgm.names, cs, ns):
        assert r0[name] == pytest.approx(float(n.min()) / 2, rel=1e-6)

    def val_loss() -> float:
        with torch.no_grad():
            out = torch.func.functional_call(model, tpgm.projected(cs, ns), (x,))
            return float(nn.functional.cross_entropy(out, y))

    fd = {}
    for name, r in zip(tpgm.names, tpgm.radii):
        with torch.no_grad():
            r += 1e-3
            up = val_loss()
            r -= 2e-3
            down = val_loss()
            r += 1e-3
        fd[name] = (up - down) / 2e-3
    loss0 = val_loss()
    tpgm.fit(itertools.cycle([(x, y)]), max_iters=1)
    r1 = tpgm.radii_by_name()
    for name in r0:
        assert abs(fd[name]) > 1e-4
        assert r1[name] - r0[name] == pytest.approx(-1e-2 * np.sign(fd[name]), rel=1e-3)
    tpgm.fit(itertools.cycle([(x, y)]), max_iters=40)
    assert val_loss() < loss0 - 1e-3


def test_tpgm_state_round_trip_and_bad_input() -> None:
    model = mlp()
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    tpgm = TPGM(model, exclude=["3.weight", "3.bias"])
    perturb(model, 0.3)
    tpgm.fit(batches(0), max_iters=3)
    sd = tpgm.state_dict()
    other = TPGM(model, exclude=["3.weight", "3.bias"], anchors=pretrained)
    other.load_state_dict(sd)
    assert other.radii_by_name() == tpgm.radii_by_name() and other.initialised
    tpgm.fit(batches(1), max_iters=2)
    other.fit(batches(1), max_iters=2)
    assert other.radii_by_name() == tpgm.radii_by_name()
    with pytest.raises(InputError, match="match no trainable"):
        TPGM(model, exclude=["head.weight"])
    with pytest.raises(UsageError):
        TPGM(model, norm="linf")
    with pytest.raises(UsageError):
        TPGM(model, lr=0)


# ---------------------------------------------------------------------------------------------- L2-SP


def test_l2sp_penalty_and_gradient_closed_form() -> None:
    model = mlp()
    anchors = {n: p.detach().clone() for n, p in model.named_parameters()}
    reg = L2SP(model, alpha=0.3, beta=0.05, head=["3.*"])
    head_sq = float(sum(p.detach().pow(2).sum() for p in model[3].parameters()))
    assert float(reg().detach()) == pytest.approx(0.5 * 0.05 * head_sq, rel=1e-6)
    perturb(model, 0.2)
    model.zero_grad()
    reg().backward()
    auto = {n: p.grad.clone() for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        expect = 0.05 * p.detach() if n.startswith("3.") else 0.3 * (p.detach() - anchors[n])
        torch.testing.assert_close(auto[n], expect, rtol=1e-6, atol=1e-7)
    expect_value = 0.15 * sum(
        float((p.detach() - anchors[n]).pow(2).sum()) for n, p in model.named_parameters() if not n.startswith("3.")
    ) + 0.025 * sum(float(p.detach().pow(2).sum()) for p in model[3].parameters())
    assert float(reg().detach()) == pytest.approx(expect_value, rel=1e-6)
    # the in-place gradient path equals autograd
    model.zero_grad(set_to_none=True)
    reg.add_grad_()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, auto[n], rtol=1e-6, atol=1e-7)
    with pytest.raises(InputError):
        L2SP(model, head=["fc.weight"])
    with pytest.raises(UsageError):
        L2SP(model, alpha=-1.0)


# ---------------------------------------------------------------------------------------------- WiSE-FT


@settings(max_examples=10, deadline=None)
@given(alpha=st.floats(0.0, 1.0), seed=st.integers(0, 100))
def test_wise_ft_endpoints_and_linearity(alpha: float, seed: int) -> None:
    m0, m1 = mlp(seed), mlp(seed + 1)
    m1(torch.randn(8, 5))  # BN running stats and num_batches_tracked differ
    t0, t1 = m0.state_dict(), m1.state_dict()
    at0, at1 = interpolate_state_dicts(t0, t1, 0.0), interpolate_state_dicts(t0, t1, 1.0)
    for k in t0:
        assert torch.equal(at0[k], t0[k]) and torch.equal(at1[k], t1[k])
    mid = interpolate_state_dicts(t0, t1, alpha)
    for k, v in t0.items():
        if v.is_floating_point():
            torch.testing.assert_close(mid[k], (1 - alpha) * v + alpha * t1[k], rtol=1e-6, atol=1e-6)
        else:
            assert torch.equal(mid[k], t1[k] if alpha > 0 else v)


def test_wise_ft_sweep_restores_model_and_bad_input() -> None:
    model, m1 = mlp(0), mlp(1)
    model.eval()
    m1.eval()
    t0, t1 = mlp(0).state_dict(), m1.state_dict()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 5)
    res = wise_ft_sweep(model, t0, t1, lambda m: m(x).detach(), alphas=[0.0, 0.5, 1.0])
    assert [a for a, _ in res] == [0.0, 0.5, 1.0]
    torch.testing.assert_close(res[0][1], mlp(0).eval()(x))
    torch.testing.assert_close(res[2][1], m1(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(UsageError):
        interpolate_state_dicts(t0, t1, 1.5)
    with pytest.raises(InputError, match="different keys"):
        interpolate_state_dicts(t0, {k: v for k, v in t1.items() if k != "0.bias"}, 0.5)


# ----------------------------------------------------------------------------------------------- LP-FT


def test_linear_probe_stage_trains_only_head_and_lr_head_matches_sklearn() -> None:
    model = mlp()
    frozen = freeze_all_but(model, ["3.*"])
    assert frozen == ["0.weight", "0.bias", "1.weight", "1.bias"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(model, "lpft", optimizer="sgd", lr=0.5)
    x, y = next(batches(2))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n in frozen)

    from sklearn.linear_model import LogisticRegression

    g = np.random.default_rng(0)
    feats = g.normal(size=(60, 12))
    labels = (feats[:, 0] + 0.5 * feats[:, 1] > 0).astype(int) + (feats[:, 2] > 1).astype(int)
    head = nn.Linear(12, 3)
    acc = fit_linear_probe_head(head, feats, labels, C=0.5)
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(feats, labels)
    logits = head(torch.as_tensor(feats, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(logits, clf.decision_function(feats), rtol=1e-4, atol=1e-4)
    assert acc == pytest.approx(clf.score(feats, labels))
    head2 = nn.Linear(12, 2)
    fit_linear_probe_head(head2, feats, (labels > 0).astype(int))
    clf2 = LogisticRegression(max_iter=2000).fit(feats, labels > 0)
    p2 = torch.softmax(head2(torch.as_tensor(feats, dtype=torch.float32)), 1)[:, 1].detach().numpy()
    np.testing.assert_allclose(p2, clf2.predict_proba(feats)[:, 1], atol=1e-5)
    with pytest.raises(InputError):
        fit_linear_probe_head(nn.Linear(12, 4), feats, labels)


def test_make_optimizer_factory() -> None:
    model = mlp()
    opt = make_optimizer(model, "ftp", optimizer="adamw", lr=1e-3, head=["3.*"], k=0.5)
    assert isinstance(opt, FTPAdamW) and opt.param_groups[0]["ftp_k"] == 0.5
    assert "3.weight" not in opt.constrained_names
    assert type(make_optimizer(model, "plain", optimizer="sgd", lr=1e-2, momentum=0.9)) is torch.optim.SGD
    with pytest.raises(UsageError):
        make_optimizer(model, "sam", lr=1e-3)
    with pytest.raises(UsageError):
        make_optimizer(model, "plain", lr=0)
    with pytest.raises(InputError):
        make_optimizer(model, "l2sp", lr=1e-3, head=["classifier.*"])
    model.requires_grad_(False)
    with pytest.raises(InputError):
        make_optimizer(model, "plain", lr=1e-3)


def test_tpgm_iterates_an_iterable_across_calls_and_restarts() -> None:
    seen: list[int] = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(int(y[0]))
        return nn.functional.cross_entropy(out, y)

    model = mlp()
    tpgm = TPGM(model, exclude=["3.*"], loss_fn=loss_fn)
    perturb(model, 0.2)
    x = torch.randn(4, 5)
    val = [(x, torch.full((4,), i)) for i in range(3)]  # like a DataLoader: an iterable, not an iterator
    tpgm.fit(val, max_iters=2)
    tpgm.fit(val, max_iters=2)
    assert seen == [0, 1, 2, 0]
    with pytest.raises(InputError, match="ran out"):
        tpgm.fit(iter(val[:1]), max_iters=2)
