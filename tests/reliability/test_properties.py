"""Property-based tests (hypothesis) of the metrics' invariances and the FTP optimizer's contracts (issue 10, item 5).

Only invariances the definitions imply are asserted, each with the reason next to it. The fixed-example tests
of tests/metrics (rotation and isotropic scaling of several scores, NC1 under rotation / scaling / translation)
and tests/finetune/test_ftp.py (the γ bound on one float64 net, torch equivalence and resume for four fixed
settings) are not repeated: here the data, shapes and hyper-parameters are drawn, and the invariances the
fixed tests do not cover are added (order of the samples, names of the classes, order of the source
classes, per-feature affine maps for the standardising ridge probe, 0-D / 1-D / 4-D rows and float32 for FTP).

Every example is built from a drawn seed with numpy / torch generators (no degenerate draws: the metrics'
input validation is tested elsewhere); ``derandomize=True`` makes every run draw the same examples.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group
from threadpoolctl import threadpool_limits
from torch import nn

from transferlens.finetune.optim import FTPSGD, FTPAdam, FTPAdamW
from transferlens.finetune.optim.ftp import row_l1
from transferlens.metrics import collapse as nc
from transferlens.metrics import rank as R
from transferlens.metrics.scores import gbc, h_score, knn_accuracy, leep, logme, nce, sfda, shrinkage_h_score, transrate
from transferlens.probe.ridge import fit_ridge, fit_ridge_probe

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**31 - 1)


@pytest.fixture(autouse=True)
def _quiet_single_thread():
    # tiny arrays: one BLAS / torch thread is fastest, and the small-sample reliability warnings are expected
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- examples
@dataclass
class Labelled:
    x: np.ndarray  # (N, D) float64
    y: np.ndarray  # (N,) int in 0..K-1, every class present
    k: int
    rng: np.random.Generator

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d(self) -> int:
        return self.x.shape[1]

    def rotation(self) -> np.ndarray:
        return ortho_group.rvs(self.d, random_state=int(self.rng.integers(2**31))) if self.d > 1 else np.array([[-1.0]])

    def sample_order(self) -> np.ndarray:
        return self.rng.permutation(self.n)

    def class_names(self) -> np.ndarray:
        """A relabelling: class c becomes class ``perm[c]`` (labels stay 0..K-1)."""
        return self.rng.permutation(self.k)


@st.composite
def labelled(draw, k=(2, 5), per_class=(3, 9), d=(2, 8)) -> Labelled:
    """Gaussian classes around random means (separation drawn), unbalanced class sizes, shuffled order."""
    k_ = draw(st.integers(*k))
    counts = draw(st.lists(st.integers(*per_class), min_size=k_, max_size=k_))
    d_ = draw(st.integers(*d))
    spread = draw(st.floats(0.5, 4.0))
    rng = np.random.default_rng(draw(SEEDS))
    y = rng.permutation(np.repeat(np.arange(k_), counts))
    x = spread * rng.normal(size=(k_, d_))[y] + rng.normal(size=(y.size, d_))
    return Labelled(x, y, k_, rng)


def close(a: float, b: float, rel: float = 1e-8, abs_: float = 1e-12) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


# ---------------------------------------------------------------------------------------------- neural collapse
@PROPERTY
@given(case=labelled(), scale=st.floats(1e-3, 1e3), shift=st.floats(-10.0, 10.0))
def test_nc1_and_cdnv_invariances(case, scale, shift):
    # NC1 = Tr(Σ_W Σ_B⁺)/K and CDNV = mean over class pairs of (Var_i + Var_j)/(2‖μ_i − μ_j‖²): both are ratios
    # of second moments around class / global means (so invariant to x -> s·xQ + t), sums over samples
    # (sample order) and symmetric in the classes (class names).
    x, y = case.x, case.y
    moved = scale * x @ case.rotation() + shift
    order, names = case.sample_order(), case.class_names()
    for measure in (nc.nc1, nc.cdnv):
        base = measure(x, y)
        assert np.isfinite(base) and base >= 0
        assert close(measure(moved, y), base, rel=1e-7), measure.__name__
        assert close(measure(x[order], y[order]), base, rel=1e-9), measure.__name__
        assert close(measure(x, names[y]), base, rel=1e-9), measure.__name__


# ---------------------------------------------------------------------------------------------- ranks
@PROPERTY
@given(seed=SEEDS, n=st.integers(8, 30), d=st.integers(2, 12), r=st.integers(1, 6), scale=st.floats(1e-3, 1e3),
       shift=st.floats(-5.0, 5.0))
def test_ranks_invariant_to_rotation_scaling_and_sample_order(seed, n, d, r, scale, shift):
    # exact rank-r data U diag(s) Vᵀ with s in [1, 3]: the covariance eigenvalues are r values within a factor
    # 9 of each other and zeros, far from the 1e-3·λ₁ cut, so the numerical rank is exactly r for every
    # orthogonal map, scaling, translation and order of the samples. Effective rank (centred) and RankMe
    # (uncentred: no translation) are entropies of singular values, which x -> s·xQ and row permutations keep.
    r = min(r, d, n - 2)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, r))
    u = np.linalg.qr(z - z.mean(axis=0))[0]  # orthonormal and centred: the centred data have singular values s
    v = np.linalg.qr(rng.normal(size=(d, r)))[0]
    x = (u * rng.uniform(1.0, 3.0, size=r)) @ v.T
    q = ortho_group.rvs(d, random_state=seed) if d > 1 else np.array([[-1.0]])
    order = rng.permutation(n)
    for variant in (x, scale * x @ q + shift, x[order]):
        assert R.numerical_rank(variant) == r
    erank = R.effective_rank(x)
    assert close(R.effective_rank(scale * x @ q + shift), erank, rel=1e-7)
    assert close(R.effective_rank(x[order]), erank, rel=1e-9)
    x_off = x + rng.normal(size=d)  # RankMe is uncentred: give it a mean to keep
    rm = R.rankme(x_off)
    assert close(R.rankme(scale * x_off @ q), rm, rel=1e-7)
    assert close(R.rankme(x_off[order]), rm, rel=1e-9)


# ---------------------------------------------------------------------------------------------- scores
# Deterministic scores that are functions of the multiset {(x_i, y_i)} (sums / means over samples) and treat
# the classes symmetrically (sums / means over classes or class pairs, argmax over class votes). Left out:
# NLEEP (a randomly initialised Gaussian mixture), PACTran (an iterative fit with a tolerance), NCTI and ETran
# (zoo-relative components), the label-free energy.
FEATURE_SCORES = {
    "logme": logme,  # mean over classes of each class's evidence (one independent fixed point per class)
    "h_score": h_score,  # Σ_c n_c d_cᵀ Σ⁻¹ d_c
    "shrinkage_h_score": shrinkage_h_score,
    "gbc": gbc,  # − Σ over ordered class pairs of the Bhattacharyya coefficient
    "transrate": transrate,  # coding rate minus the mean over classes of the class coding rates
    "sfda": sfda,  # LDA posterior of the true class after ConfMix, averaged over samples
    "knn_accuracy": knn_accuracy,  # leave-one-out vote of the 20 nearest neighbours
}


@pytest.mark.parametrize("name", sorted(FEATURE_SCORES))
@PROPERTY
@given(case=labelled(k=(2, 4), per_class=(5, 10), d=(2, 6)))
def test_scores_invariant_to_sample_order_and_class_names(name, case):
    fn = FEATURE_SCORES[name]
    order, names = case.sample_order(), case.class_names()
    base = fn(case.x, case.y)
    assert np.isfinite(base)
    # kNN accuracy is a count: exact. The others differ only by rounding (sums in another order).
    rel = 0.0 if name == "knn_accuracy" else 1e-7
    assert close(fn(case.x[order], case.y[order]), base, rel=rel, abs_=1e-10)
    assert close(fn(case.x, names[case.y]), base, rel=rel, abs_=1e-10)


@PROPERTY
@given(seed=SEEDS, n_per=st.integers(2, 8), k=st.integers(2, 5), c_s=st.integers(2, 7), sharp=st.floats(0.1, 5.0))
def test_leep_and_nce_invariant_to_sample_order_and_both_class_namings(seed, n_per, k, c_s, sharp):
    # LEEP = mean_i log Σ_z P(y_i|z) θ_z(x_i) with the empirical joint P(y, z); NCE = Σ P(y,z) log P(y|z) with
    # z = argmax θ: sums over samples, target classes and source classes, so the order of the samples, the
    # names of the target classes and the order of the source classes (the columns of θ) do not matter.
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(k), n_per))
    probs = rng.dirichlet(np.full(c_s, sharp), size=y.size)
    order, names, columns = rng.permutation(y.size), rng.permutation(k), rng.permutation(c_s)
    for fn in (leep, nce):
        base = fn(probs, y)
        assert np.isfinite(base) and base <= 1e-12
        assert close(fn(probs[order], y[order]), base, rel=1e-10, abs_=1e-12)
        assert close(fn(probs, names[y]), base, rel=1e-10, abs_=1e-12)
        assert close(fn(probs[:, columns], y), base, rel=1e-10, abs_=1e-12)  # (argmax ties: measure zero)


# ---------------------------------------------------------------------------------------------- ridge probe
@PROPERTY
@given(case=labelled(k=(2, 4), per_class=(4, 10), d=(2, 6)), log_alpha=st.floats(-3.0, 2.0), log_scale=st.floats(-2.0, 2.0),
       negative=st.lists(st.booleans(), min_size=6, max_size=6), shift=st.floats(-20.0, 20.0))
def test_standardising_ridge_probe_ignores_per_feature_affine_maps(case, log_alpha, log_scale, negative, shift):
    # With standardize=True the probe works on z = (x − x̄)/σ. A map x_j -> a_j x_j + t_j (a_j ≠ 0) turns z_j into
    # sign(a_j) z_j, and the ridge penalty ‖W‖² does not see sign flips of rows of W: the decision values on
    # correspondingly mapped new data are the same (the fitted probe, and the one with α chosen on a
    # validation split from a scale-free grid). Order of the training samples: sums only.
    x, y = case.x, case.y
    rng = case.rng
    a = np.exp(log_scale + rng.uniform(-1, 1, size=case.d)) * np.where(np.array(negative[: case.d]), -1.0, 1.0)
    t = shift * rng.uniform(-1, 1, size=case.d)
    x_new = rng.normal(size=(12, case.d)) * 2
    ref = fit_ridge(x, y, 10.0**log_alpha, standardize=True).decision_function(x_new)
    mapped = fit_ridge(x * a + t, y, 10.0**log_alpha, standardize=True).decision_function(x_new * a + t)
    np.testing.assert_allclose(mapped, ref, rtol=1e-7, atol=1e-9)
    order = case.sample_order()
    shuffled = fit_ridge(x[order], y[order], 10.0**log_alpha, standardize=True).decision_function(x_new)
    np.testing.assert_allclose(shuffled, ref, rtol=1e-9, atol=1e-11)
    probe, _ = fit_ridge_probe(x, y, seed=3, val_fraction=0.3)
    probe_mapped, _ = fit_ridge_probe(x * a + t, y, seed=3, val_fraction=0.3)
    assert probe_mapped.info["selection"]["val_accuracy"] == probe.info["selection"]["val_accuracy"]
    assert close(probe_mapped.alpha, probe.alpha, rel=1e-7)
    np.testing.assert_allclose(probe_mapped.decision_function(x_new * a + t), probe.decision_function(x_new),
                               rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------- FTP optimizer
class Net(nn.Module):
    """Tensors of every row shape FTP handles: 4-D conv weight (rows = output channels), 2-D linear weight,
    1-D vectors (one row each) and a 0-D scalar; a new head that FTP excludes."""

    def __init__(self, c: int, h: int, k: int, seed: int, dtype: torch.dtype) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(2, c, 3)
        self.fc = nn.Linear(c * 9, h)
        self.gain = nn.Parameter(torch.ones(h))
        self.temperature = nn.Parameter(torch.tensor(1.0))
        self.head = nn.Linear(h, k)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.4 + (1.0 if p.ndim == 0 else 0.0))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(torch.relu(self.conv(x)).flatten(1))) * self.gain
        return self.head(h) * self.temperature


HEAD = ["head.*"]
OPTIMIZERS = {"FTPSGD": (FTPSGD, torch.optim.SGD), "FTPAdam": (FTPAdam, torch.optim.Adam),
              "FTPAdamW": (FTPAdamW, torch.optim.AdamW)}


@st.composite
def ftp_setup(draw):
    """A net, a batch, an FTP optimizer class and base-optimizer keyword arguments valid for it."""
    name = draw(st.sampled_from(sorted(OPTIMIZERS)))
    kw: dict = {"weight_decay": draw(st.sampled_from([0.0, 1e-3, 5e-2]))}
    if name == "FTPSGD":
        kw["lr"] = draw(st.floats(1e-3, 0.3))
        kw["momentum"] = draw(st.sampled_from([0.0, 0.5, 0.9]))
        kw["nesterov"] = kw["momentum"] > 0 and draw(st.booleans())
    else:
        kw["lr"] = draw(st.floats(1e-4, 5e-2))
        kw["betas"] = (draw(st.sampled_from([0.8, 0.9])), draw(st.sampled_from([0.99, 0.999])))
        kw["amsgrad"] = draw(st.booleans())
    shape = dict(c=draw(st.integers(1, 4)), h=draw(st.integers(1, 6)), k=draw(st.integers(2, 4)), seed=draw(SEEDS))
    return name, kw, shape


def batch(seed: int, k: int, dtype: torch.dtype, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 5, 5, generator=g, dtype=dtype), torch.randint(0, k, (n,), generator=g)


def train(net: nn.Module, opt: torch.optim.Optimizer, xy: tuple[torch.Tensor, torch.Tensor], steps: int, after=None) -> None:
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xy[0]), xy[1]).backward()
        opt.step()
        if after is not None:
            after()


@PROPERTY
@given(setup=ftp_setup(), k=st.floats(0.0, 1.0), gamma_lr=st.sampled_from([1e-3, 1e-2, 1e-1]), steps=st.integers(1, 12),
       dtype=st.sampled_from([torch.float64, torch.float32]))
def test_ftp_rows_stay_within_gamma_and_gamma_within_its_clip(setup, k, gamma_lr, steps, dtype):
    # After every step each constrained row lies in the row-L1 ball of radius γ around its anchor, and γ is
    # clipped to [1e-8, max_rows n_t] (n_t = row-L1 of the proposed deviation + 1e-8). The upper clip is seen
    # on the weights: the farthest row is then at distance γ − γ·1e-8/n ≥ γ − 1e-8, i.e. the ball is tight.
    # Tolerance: rounding of w = w0 + r·c and of the row sums, a few ulp of the row's magnitude (float32: ~1e-6).
    name, kw, shape = setup
    net = Net(**shape, dtype=dtype)
    anchors = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = OPTIMIZERS[name][0](net, exclude=HEAD, k=k, gamma_lr=gamma_lr, **kw)
    assert set(opt.constrained_names) == {"conv.weight", "conv.bias", "fc.weight", "fc.bias", "gain", "temperature"}
    eps = torch.finfo(dtype).eps
    params = dict(net.named_parameters())

    def check() -> None:
        for pname, gamma_t in opt.gammas().items():
            gamma = float(gamma_t)
            p, a = params[pname].detach().double(), anchors[pname].double()
            dist = row_l1(p - a).reshape(-1)
            cols = p[0].numel() if p.ndim > 1 else p.numel()  # 0-D and 1-D tensors are one row
            tol = eps * (4 * row_l1(p.abs() + a.abs()).reshape(-1) + (cols + 4) * gamma) + 1e-300
            assert gamma >= float(torch.tensor(1e-8, dtype=gamma_t.dtype)), (pname, gamma)  # 1e-8 in γ's dtype
            assert bool(torch.all(dist <= gamma + tol)), (pname, gamma, float((dist - gamma).max()))
            assert float((dist + tol).max()) >= gamma - 1e-8, (pname, gamma, float(dist.max()))

    train(net, opt, batch(shape["seed"] + 1, shape["k"], dtype), steps, after=check)
    assert len(opt.gammas()) == 6


@PROPERTY
@given(setup=ftp_setup(), steps=st.integers(1, 15))
def test_ftp_with_every_tensor_excluded_is_the_torch_optimizer(setup, steps):
    # Excluded tensors get "the plain base step": bit for bit the torch optimizer with the same arguments.
    name, kw, shape = setup
    ftp_cls, torch_cls = OPTIMIZERS[name]
    a, b = Net(**shape, dtype=torch.float32), Net(**shape, dtype=torch.float32)
    opt_a = ftp_cls(a, exclude=["*"], **kw)
    opt_b = torch_cls(b.parameters(), **kw)
    assert opt_a.constrained_names == [] and opt_a.gammas() == {}
    xy = batch(shape["seed"] + 1, shape["k"], torch.float32)
    train(a, opt_a, xy, steps)
    train(b, opt_b, xy, steps)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), n


def _round_trip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@PROPERTY
@given(setup=ftp_setup(), k=st.floats(0.0, 1.0), first=st.integers(1, 8), then=st.integers(1, 8))
def test_ftp_state_dict_round_trip_continues_identically(setup, k, first, then):
    # γ, its moments, the stored direction and the step count are in state_dict(); rebuilt from the same
    # pretrained weights (the anchors) and restored, the optimizer continues bit for bit.
    name, kw, shape = setup
    ftp_cls = OPTIMIZERS[name][0]
    xy = batch(shape["seed"] + 1, shape["k"], torch.float32)
    ref = Net(**shape, dtype=torch.float32)
    opt_ref = ftp_cls(ref, exclude=HEAD, k=k, **kw)
    train(ref, opt_ref, xy, first + then)

    net = Net(**shape, dtype=torch.float32)
    opt = ftp_cls(net, exclude=HEAD, k=k, **kw)
    train(net, opt, xy, first)
    ckpt = _round_trip({"model": net.state_dict(), "optim": opt.state_dict()})
    resumed = Net(**shape, dtype=torch.float32)  # the pretrained weights: the anchors of the new optimizer
    opt2 = ftp_cls(resumed, exclude=HEAD, k=k, **kw)
    resumed.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optim"])
    train(resumed, opt2, xy, then)
    for (n, p1), p2 in zip(ref.named_parameters(), resumed.parameters()):
        assert torch.equal(p1, p2), n
    g_ref, g2 = opt_ref.gammas(), opt2.gammas()
    assert g_ref.keys() == g2.keys() and all(torch.equal(g_ref[n], g2[n]) for n in g_ref)
