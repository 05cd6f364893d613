"""FTP optimizer: equivalence with torch when excluded, hand-computed steps, constraint, resume, bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transferlens.errors import InputError, UsageError
from transferlens.finetune.optim import FTPSGD, FTPAdam, FTPAdamW
from transferlens.finetune.optim.ftp import row_l1

torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(2, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 8)
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.head(torch.tanh(self.fc(h)))


def data(seed: int = 1, n: int = 32, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 6, 6, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    x, y = data(seed, dtype=next(model.parameters()).dtype)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


HEAD = ["head.weight", "head.bias"]


@pytest.mark.parametrize(
    ("ftp_cls", "torch_cls", "kw"),
    [
        (FTPAdam, torch.optim.Adam, dict(lr=1e-2)),
        (FTPAdam, torch.optim.Adam, dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
        (FTPAdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
        (FTPSGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ],
)
def test_everything_excluded_equals_torch_optimizer(ftp_cls, torch_cls, kw) -> None:
    a, b = Net(), Net()
    opt_a = ftp_cls(a, exclude=["*"], **kw)
    opt_b = torch_cls(b.parameters(), **kw)
    assert opt_a.constrained_names == []
    train(a, opt_a, 50)
    train(b, opt_b, 50)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-7)
    assert not torch.equal(a.conv.weight, Net().conv.weight)  # it did train


def _rowl1(x: np.ndarray) -> np.ndarray:
    return np.abs(x.reshape(x.shape[0], -1)).sum(1, keepdims=True) if x.ndim > 1 else np.abs(x).sum(keepdims=True)


def test_hand_computed_two_steps() -> None:
    """SGD(lr=1) + FTP on two tensors with gradients set by hand; γ, moments and weights by the formulas."""
    w0 = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    b0 = np.array([0.5, -0.5])
    g1w = np.array([[0.2, -0.1, 0.3], [-0.4, 0.1, 0.0]])
    g1b = np.array([0.3, 0.1])
    g2w = np.array([[-0.5, 0.2, -0.1], [0.3, -0.2, 0.1]])  # <g2, c1> > 0 ... sign checked below
    g2b = np.array([0.2, 0.3])
    w = nn.Parameter(torch.tensor(w0))
    b = nn.Parameter(torch.tensor(b0))
    opt = FTPSGD([("w", w), ("b", b)], lr=1.0, k=0.5)
    for gw, gb in ((g1w, g1b), (g2w, g2b)):
        w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
        opt.step()

    mu, b1, b2, eps, k = 1e-2, 0.9, 0.999, 1e-8, 0.5
    expected = {}
    for name, x0, g1, g2 in (("w", w0, g1w, g2w), ("b", b0, g1b, g2b)):
        # step 1: SGD proposal, gamma = 1e-8, projection (all rows back to the anchor)
        c1 = (x0 - g1) - x0
        n1 = _rowl1(c1) + 1e-8
        x1 = x0 + np.clip(1e-8 / n1, 0, 1) * c1
        # step 2: hyper-gradient from g2 and (c1, n1), annealed if positive, scalar Adam with t = 2
        hg = float(np.sum((g2 * c1).reshape(c1.shape[0], -1).sum(1, keepdims=True) / n1)) if x0.ndim > 1 \
            else float(np.sum(g2 * c1) / n1[0])
        if hg > 0:
            hg *= k
        m, v = (1 - b1) * hg, (1 - b2) * hg**2
        gamma = 1e-8 - mu * (m / (1 - b1**2)) / (math.sqrt(v / (1 - b2**2)) + eps)
        c2 = (x1 - g2) - x0
        n2 = _rowl1(c2) + 1e-8
        gamma = min(max(gamma, 1e-8), float(n2.max()))
        expected[name] = (x0 + np.clip(gamma / n2, 0, 1) * c2, gamma, m, v, hg)

    # w: <g2, c1> = -<g2, g1> > 0 -> annealed, gamma clipped back to 1e-8;  b: hyper-gradient < 0 -> grows
    assert expected["w"][4] > 0 and expected["b"][4] < 0
    assert expected["b"][1] == pytest.approx(1e-8 + 1e-2 * (0.1 / 0.19) / math.sqrt(0.001 / (1 - 0.999**2)), rel=1e-6)
    for name, p in (("w", w), ("b", b)):
        xe, gamma, m, v, _ = expected[name]
        st_ = opt.state[p]
        np.testing.assert_allclose(p.detach().numpy(), xe, rtol=0, atol=1e-12)
        assert float(st_["ftp_gamma"]) == pytest.approx(gamma, rel=1e-6, abs=1e-14)
        assert float(st_["ftp_gamma_exp_avg"]) == pytest.approx(m, rel=1e-9)
        assert float(st_["ftp_gamma_exp_avg_sq"]) == pytest.approx(v, rel=1e-9)
        assert st_["ftp_step"] == 2


def test_first_step_returns_to_anchor_and_head_moves() -> None:
    net = Net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = FTPAdam(net, lr=1e-2, exclude=HEAD)
    train(net, opt, 1)
    for n, p in net.named_parameters():
        dev = (p - before[n]).abs().max().item()
        if n.startswith("head"):
            assert dev > 1e-3
        else:
            assert dev < 1e-6


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.sampled_from([0.0, 0.3, 1.0]), steps=st.integers(2, 25))
def test_rows_within_gamma_after_projection(seed: int, k: float, steps: int) -> None:
    net = Net(seed, dtype=torch.float64)  # float64: the bound is exact up to ~1e-15, not float32 rounding
    anchors = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = FTPAdamW(net, lr=3e-2, exclude=HEAD, k=k)
    x, y = data(seed + 1, dtype=torch.float64)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        for name, gamma in opt.gammas().items():
            p = dict(net.named_parameters())[name]
            dist = row_l1(p.detach() - anchors[name])
            g = float(gamma)
            assert g >= 1e-8
            assert float(dist.max()) <= g * (1 + 1e-12) + 1e-14


def test_row_l1_pins_vector_and_scalar_behaviour() -> None:
    assert row_l1(torch.tensor([1.0, -2.0, 3.0])).tolist() == [6.0]
    assert row_l1(torch.tensor(-2.5)).item() == 2.5
    assert row_l1(torch.tensor([[1.0, -1.0], [2.0, 0.5]])).reshape(-1).tolist() == [2.0, 2.5]


def test_stored_direction_gives_autograd_hypergradient() -> None:
    """The γ hyper-gradient Σ<g, c/n> equals d/dγ L(w0 + γ u) by autograd (all rows projected)."""
    torch.manual_seed(0)
    net = Net(3, dtype=torch.float64)
    opt = FTPAdam(net, lr=5e-2, exclude=HEAD)
    x, y = data(4, dtype=torch.float64)
    train(net, opt, 6, seed=4)
    p = net.fc.weight
    st_ = opt.state[p]
    gamma = st_["ftp_gamma"].detach().clone().requires_grad_(True)
    u = st_["ftp_dir"]
    # W(γ') = W + (γ' - γ) u: for rows on the boundary this is w0 + γ' c/n; FTP uses this derivative for all
    w = p.detach() + (gamma - gamma.detach()) * u
    out = nn.functional.cross_entropy(torch.func.functional_call(net, {"fc.weight": w}, (x,)), y)
    (auto,) = torch.autograd.grad(out, gamma)
    m_before = float(st_["ftp_gamma_exp_avg"])
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    hg = (float(st_["ftp_gamma_exp_avg"]) - 0.9 * m_before) / 0.1
    k_scale = 1.0  # k = 1
    assert hg == pytest.approx(float(auto) * k_scale, rel=1e-8, abs=1e-12)


def test_state_keyed_by_parameter_with_missing_grads() -> None:
    """A tensor without a gradient on some steps: no crash, untouched on those steps, others unaffected.

    Per-tensor FTP and Adam updates depend only on that tensor's own gradients, so one optimizer over
    both branches must equal two separate optimizers (the second stepped only when it has a gradient).
    """

    class TwoBranch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(5)
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)
            with torch.no_grad():
                for q in self.parameters():
                    q.copy_(torch.randn(q.shape, generator=g) * 0.5)

        def forward(self, x: torch.Tensor, use_b: bool) -> torch.Tensor:
            h = torch.tanh(self.a(x))
            if use_b:
                h = h + torch.tanh(self.b(x))
            return self.head(h)

    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 2, (16,), generator=g)
    m1, m2 = TwoBranch(), TwoBranch()
    opt = FTPAdam(m1, lr=5e-2, exclude=["head.*"])
    b_names = ("b.weight", "b.bias")
    opt_a = FTPAdam([(n, q) for n, q in m2.named_parameters() if n not in b_names], lr=5e-2, exclude=["head.*"])
    opt_b = FTPAdam([(n, q) for n, q in m2.named_parameters() if n in b_names], lr=5e-2)
    b_steps = 0
    for t in range(12):
        use_b = t % 3 == 1 or t == 0
        b_before = m1.b.weight.detach().clone()
        for m, opts in ((m1, [opt]), (m2, [opt_a, opt_b])):
            for o in opts:
                o.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(m(x, use_b), y).backward()
            opt.step() if m is m1 else (opt_a.step(), use_b and opt_b.step())
        b_steps += use_b
        if not use_b:
            assert torch.equal(m1.b.weight, b_before)
    assert opt.state[m1.b.weight]["ftp_step"] == b_steps
    for q1, q2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(q1, q2, rtol=0, atol=1e-7)


def _save_load(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("cls", [FTPAdamW, FTPSGD])
def test_resume_equals_uninterrupted(cls) -> None:
    kw = dict(lr=2e-2, weight_decay=1e-2) if cls is FTPAdamW else dict(lr=5e-2, momentum=0.9)
    pretrained = Net(7).state_dict()
    ref = Net(7)
    opt_ref = cls(ref, exclude=HEAD, **kw)
    train(ref, opt_ref, 16)

    net = Net(7)
    opt = cls(net, exclude=HEAD, **kw)
    train(net, opt, 8)
    blob = _save_load({"model": net.state_dict(), "optim": opt.state_dict()})
    ckpt = _save_load(blob)  # torch's load_state_dict aliases the loaded tensors: use a fresh copy per load
    assert not any(k.startswith("ftp_anchor") for s in ckpt["optim"]["state"].values() for k in s)
    del net, opt
    # rebuild from the pretrained weights (anchors), then restore the checkpoint
    net2 = Net(0)
    net2.load_state_dict(pretrained)
    opt2 = cls(net2, exclude=HEAD, **kw)
    net2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optim"])
    train(net2, opt2, 8)
    for p1, p2 in zip(ref.parameters(), net2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=0, atol=1e-7)
    for (n1, g1), (n2, g2) in zip(opt_ref.gammas().items(), opt2.gammas().items()):
        assert n1 == n2 and float(g1) == float(g2)

    # same with anchors passed by name (saved once), built directly on the trained weights
    ckpt = _save_load(blob)
    net3 = Net(0)
    net3.load_state_dict(ckpt["model"])
    opt3 = cls(net3, exclude=HEAD, anchors=pretrained, **kw)
    opt3.load_state_dict(ckpt["optim"])
    train(net3, opt3, 8)
    for p1, p3 in zip(ref.parameters(), net3.parameters()):
        torch.testing.assert_close(p1, p3, rtol=0, atol=1e-7)


def test_half_precision_gamma_stays_float32_through_checkpoint() -> None:
    net = Net(2).to(torch.bfloat16)
    opt = FTPAdam(net, lr=1e-2, exclude=HEAD)
    train(net, opt, 3)
    sd = _save_load(opt.state_dict())
    opt2 = FTPAdam(net, lr=1e-2, exclude=HEAD, anchors={k: v for k, v in opt.anchor_state_dict().items()})
    opt2.load_state_dict(sd)
    for p in net.parameters():
        if "ftp_gamma" in opt2.state[p]:
            assert opt2.state[p]["ftp_gamma"].dtype == torch.float32
            assert torch.equal(opt2.state[p]["ftp_gamma"], opt.state[p]["ftp_gamma"])


def test_step_hooks_run_once_and_closure_supported() -> None:
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # patches torch's Adam.step with its hook wrapper
    net = Net()
    opt = FTPAdam(net, lr=1e-2, exclude=HEAD)
    calls = []
    opt.register_step_post_hook(lambda *a: calls.append(1))
    x, y = data()

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == [1] and torch.isfinite(loss)


def test_exclusion_by_object_and_wrapper_prefix() -> None:
    net = Net()
    wrapped = nn.Module()
    wrapped.module = net  # like DDP / DataParallel: names start with "module."
    opt = FTPAdam(wrapped, lr=1e-2, exclude=["head.weight", net.head.bias])
    assert opt.constrained_names == ["conv.weight", "bn.weight", "bn.bias", "fc.weight", "fc.bias"]


# ------------------------------------------------------------------------------------------ bad input


def test_bad_input_errors() -> None:
    net = Net()
    with pytest.raises(InputError, match="match no optimised parameter"):
        FTPAdam(net, lr=1e-3, exclude=["heads.weight"])
    with pytest.raises(InputError, match="match no optimised parameter"):
        FTPAdam(net, lr=1e-3, exclude=[nn.Parameter(torch.zeros(2))])
    frozen = Net()
    frozen.requires_grad_(False)
    with pytest.raises(InputError, match="no trainable parameters"):
        FTPAdamW(frozen, lr=1e-3)
    for lr in (0.0, -1e-3):
        with pytest.raises(UsageError, match="learning rate"):
            FTPSGD(net, lr=lr)
    with pytest.raises(UsageError, match="k must lie"):
        FTPAdam(net, lr=1e-3, k=2.0)
    with pytest.raises(UsageError, match="named parameters"):
        FTPAdam(net.parameters(), lr=1e-3, exclude=["head.weight"])
    with pytest.raises(InputError, match="no pretrained counterpart"):
        FTPAdam(net, lr=1e-3, anchors={k: v for k, v in net.state_dict().items() if not k.startswith("head")})


def test_checkpoint_from_other_model_or_anchors_is_rejected() -> None:
    net = Net()
    opt = FTPAdam(net, lr=1e-2, exclude=HEAD)
    train(net, opt, 2)
    sd = opt.state_dict()

    class Other(Net):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 9)
            self.head = nn.Linear(9, 3)

    with pytest.raises(InputError, match="different model"):
        FTPAdam(Other(), lr=1e-2, exclude=HEAD).load_state_dict(sd)
    with pytest.raises(InputError, match="anchor"):
        FTPAdam(Net(seed=9), lr=1e-2, exclude=HEAD).load_state_dict(sd)
    with pytest.raises(InputError, match="exclude"):
        FTPAdam(Net(), lr=1e-2, exclude=["head.*", "fc.bias"]).load_state_dict(sd)
    with pytest.raises(InputError, match="not saved by an FTP"):
        FTPAdam(Net(), lr=1e-2, exclude=HEAD).load_state_dict(torch.optim.Adam(Net().parameters()).state_dict())
