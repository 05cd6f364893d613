"""Geometric complexity (GC) of a model or tapped layer: exact, stochastic, and as a training regulariser.

Definition (Dherin, Munn, Rosca & Barrett, NeurIPS 2022, arXiv 2209.13083; applied to the embedding
network in Munn, Dherin & Gonzalvo, NeurIPS 2024, arXiv 2405.15706):

    GC(f, D) = (1/|D|) Σ_{x∈D} ‖∂f(x)/∂x‖²_F

Conventions (state them when you report a number):

* **Input** — the derivative is taken w.r.t. the tensor handed to ``fn``, i.e. *after* whatever
  preprocessing the caller applied (e.g. ImageNet normalisation). Rescaling the input x → s·x divides GC
  by s²; GC is only comparable across runs with identical preprocessing.
* **Output** — every element of ``fn(x)`` for one sample, flattened (for a tapped layer: that layer's
  activation; for a classifier: the logits). Scaling f → a·f multiplies GC by a².
* **No ½ factor** — ``facebookresearch/jacobian_regularizer`` (``JacobianReg``) returns ½·mean‖J‖²_F;
  GC = 2 × its output. We return the plain mean over samples of the squared Frobenius norm.
* **Per-sample Jacobians** — GC assumes f acts on each sample independently. BatchNorm in train mode
  couples the samples of a batch, so measurements put ``fn`` (when it is, or wraps, an ``nn.Module``)
  in ``eval()`` mode for the duration and restore the previous modes afterwards; the regulariser runs
  BatchNorm layers in eval mode (running statistics, no update) for its own forward pass.

Estimators:

* :func:`gc_exact` — per-sample Jacobians with ``torch.func.vmap(jacrev(f))`` (``method="vmap"``) or one
  backward pass per output coordinate (``method="rows"``, works for any autograd-compatible callable).
* :func:`gc_stochastic` — Hutchinson-type random projections ‖J‖²_F = E_v ‖vᵀJ‖² with E[v vᵀ] = I
  (Rademacher, Gaussian, or √p·uniform-on-sphere as in JacobianReg): one vector-Jacobian product per probe,
  unbiased for any number of probes, with a standard error.
* :class:`GCRegularizer` / :func:`gc_penalty` — λ·GĈ on a batch, differentiable (double backprop), to add
  to any loss.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch
from torch import nn

from ..errors import InputError

Probe = Literal["rademacher", "gaussian", "sphere"]
Fn = Callable[[torch.Tensor], torch.Tensor]

__all__ = [
    "LayerTap",
    "GCResult",
    "gc_exact",
    "gc_stochastic",
    "geometric_complexity",
    "per_class_gc",
    "gc_penalty",
    "GCRegularizer",
]


# ---------------------------------------------------------------------------------------------------------
# tapping a layer
# ---------------------------------------------------------------------------------------------------------
class _StopForward(Exception):
    pass


class LayerTap(nn.Module):
    """Callable ``x ↦ output of submodule `layer` of `module``` (flattened per sample by default).

    The forward pass stops at the tapped layer (the rest of the network is not evaluated). ``layer`` is a
    name from ``module.named_modules()``, e.g. ``"avgpool"`` for a torchvision ResNet's penultimate layer.
    """

    def __init__(self, module: nn.Module, layer: str, *, flatten: bool = True) -> None:
        super().__init__()
        names = dict(module.named_modules())
        if layer not in names:
            some = [n for n in names if n][:12]
            raise InputError(f"layer {layer!r} not found in {type(module).__name__}; available names include {some}.")
        self.module = module
        self.layer = layer
        self.flatten = flatten
        self._sub = names[layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box: list[torch.Tensor] = []

        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            box.append(out[0] if isinstance(out, (tuple, list)) else out)
            raise _StopForward

        handle = self._sub.register_forward_hook(hook)
        try:
            self.module(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not box:
            raise InputError(f"layer {self.layer!r} was not called during the forward pass.")
        out = box[0]
        return out.flatten(1) if self.flatten else out


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _eval_mode(fn: Any, enabled: bool) -> Iterator[None]:
    """Put every nn.Module reachable from ``fn`` (itself or ``fn.module``) in eval mode, then restore."""
    mods = [m for m in (fn, getattr(fn, "module", None)) if isinstance(m, nn.Module)]
    if not enabled or not mods:
        yield
        return
    saved = [(m, m.training) for root in mods for m in root.modules()]
    try:
        for root in mods:
            root.eval()
        yield
    finally:
        for m, t in saved:
            m.training = t


@contextlib.contextmanager
def _bn_eval(fn: Any, enabled: bool) -> Iterator[None]:
    """Switch only BatchNorm layers to eval mode (per-sample independence), then restore."""
    mods = [m for m in (fn, getattr(fn, "module", None)) if isinstance(m, nn.Module)]
    bns = [m for root in mods for m in root.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not enabled or not bns:
        yield
        return
    saved = [(m, m.training) for m in bns]
    try:
        for m in bns:
            m.eval()
        yield
    finally:
        for m, t in saved:
            m.training = t


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, (tuple, list)):
        x = x[0]
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"inputs must be tensors (or batches (x, y) of tensors), got {type(x).__name__}.")
    if x.ndim < 1 or x.shape[0] == 0:
        raise InputError(f"inputs must have a leading batch dimension and at least one sample, got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise InputError(f"inputs must be floating point to differentiate through, got dtype {x.dtype}.")
    if not torch.isfinite(x).all():
        raise InputError("inputs contain NaN or Inf; drop or impute those samples.")
    return x.detach()


def _batches(inputs: Any, batch_size: int) -> Iterator[torch.Tensor]:
    if batch_size < 1:
        raise InputError(f"batch_size must be positive, got {batch_size}.")
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        x = _as_tensor(inputs)
        for s in range(0, x.shape[0], batch_size):
            yield x[s : s + batch_size]
    else:
        for b in inputs:
            yield _as_tensor(b)


def _flat_out(fn: Fn, x: torch.Tensor) -> torch.Tensor:
    y = fn(x)
    if not isinstance(y, torch.Tensor):
        raise InputError(f"fn must return a tensor, got {type(y).__name__}; tap a layer with LayerTap.")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise InputError(f"fn must map a batch of {x.shape[0]} inputs to {x.shape[0]} outputs, got shape {tuple(y.shape)}.")
    return y.reshape(y.shape[0], -1)


def _draw(shape: tuple[int, ...], probe: str, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    if probe == "rademacher":
        v = torch.randint(0, 2, shape, generator=gen).to(like.dtype) * 2 - 1
    elif probe == "gaussian":
        v = torch.randn(shape, generator=gen, dtype=like.dtype)
    elif probe == "sphere":
        v = torch.randn(shape, generator=gen, dtype=like.dtype)
        v = v / v.norm(dim=1, keepdim=True) * math.sqrt(shape[1])
    else:
        raise InputError(f"probe must be 'rademacher', 'gaussian' or 'sphere', got {probe!r}.")
    return v.to(like.device)


@dataclass(frozen=True)
class GCResult:
    """GC estimate ``value`` ± standard error ``se`` (0 for exact over all inputs) and per-sample values."""

    value: float
    se: float
    n_samples: int
    n_probes: int | None
    method: str
    per_sample: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_sample")
        return d


# ---------------------------------------------------------------------------------------------------------
# exact
# ---------------------------------------------------------------------------------------------------------
def _exact_vmap(fn: Fn, x: torch.Tensor, output_chunk: int | None) -> torch.Tensor:
    from torch.func import jacrev, vmap

    def single(xi: torch.Tensor) -> torch.Tensor:
        return fn(xi.unsqueeze(0)).reshape(-1)

    jac = vmap(jacrev(single, chunk_size=output_chunk))(x)  # (B, p, *in)
    return jac.reshape(x.shape[0], -1).pow(2).sum(dim=1)


def _exact_rows(fn: Fn, x: torch.Tensor) -> torch.Tensor:
    xb = x.clone().requires_grad_(True)
    with torch.enable_grad():
        y = _flat_out(fn, xb)
        acc = torch.zeros(x.shape[0], dtype=y.dtype, device=y.device)
        for k in range(y.shape[1]):
            (g,) = torch.autograd.grad(y[:, k].sum(), xb, retain_graph=k < y.shape[1] - 1)
            acc += g.reshape(x.shape[0], -1).pow(2).sum(dim=1)
    return acc


def gc_exact(
    fn: Fn,
    inputs: Any,
    *,
    batch_size: int = 32,
    method: Literal["auto", "vmap", "rows"] = "auto",
    output_chunk: int | None = None,
    eval_mode: bool = True,
) -> GCResult:
    """Exact GC = mean_x ‖∂fn(x)/∂x‖²_F over all ``inputs`` (tensor (N, ...) or iterable of batches).

    ``method="vmap"`` builds per-sample Jacobians with ``torch.func.vmap(jacrev)`` (``output_chunk`` bounds
    the number of output rows per vmapped backward); ``"rows"`` uses one batched backward pass per output
    coordinate (any autograd callable); ``"auto"`` tries vmap and falls back to rows with a warning.
    Cost: p vector-Jacobian products per sample (p = output size).

    >>> import torch
    >>> lin = torch.nn.Linear(3, 2, bias=False)
    >>> with torch.no_grad(): _ = lin.weight.copy_(torch.tensor([[1., 2., 0.], [0., 0., 3.]]))
    >>> gc_exact(lin, torch.randn(5, 3)).value   # a linear map: ‖W‖²_F = 1 + 4 + 9 at every x
    14.0
    """
    if method not in ("auto", "vmap", "rows"):
        raise InputError(f"method must be 'auto', 'vmap' or 'rows', got {method!r}.")
    vals: list[torch.Tensor] = []
    use = method
    with _eval_mode(fn, eval_mode):
        for xb in _batches(inputs, batch_size):
            if not vals:
                with torch.no_grad():
                    _flat_out(fn, xb[:1])  # clear error for a wrong output shape before vmap
            if use in ("auto", "vmap"):
                try:
                    vals.append(_exact_vmap(fn, xb, output_chunk).detach())
                    use = "vmap"
                    continue
                except (RuntimeError, NotImplementedError) as exc:
                    if use == "vmap":
                        raise
                    warnings.warn(f"vmap(jacrev) failed ({str(exc)[:120]}); using one backward per output.", stacklevel=2)
                    use = "rows"
            vals.append(_exact_rows(fn, xb).detach())
    if not vals:
        raise InputError("no inputs were given.")
    ps = torch.cat(vals).double().cpu().numpy()
    return GCResult(float(ps.mean()), 0.0, int(ps.shape[0]), None, f"exact-{use}", ps)


# ---------------------------------------------------------------------------------------------------------
# stochastic
# ---------------------------------------------------------------------------------------------------------
def _subsample(inputs: Any, n_samples: int | None, gen: torch.Generator) -> tuple[Any, bool]:
    if n_samples is None:
        return inputs, False
    if not isinstance(inputs, (torch.Tensor, np.ndarray)):
        raise InputError("n_samples (input subsampling) needs the inputs as one tensor, not an iterable of batches.")
    x = _as_tensor(inputs)
    if n_samples < 1:
        raise InputError(f"n_samples must be positive, got {n_samples}.")
    if n_samples >= x.shape[0]:
        return x, False
    idx = torch.randperm(x.shape[0], generator=gen)[:n_samples]
    return x[idx], True


def gc_stochastic(
    fn: Fn,
    inputs: Any,
    *,
    n_probes: int = 8,
    n_samples: int | None = None,
    probe: Probe = "rademacher",
    batch_size: int = 64,
    probe_chunk: int = 16,
    seed: int = 0,
    eval_mode: bool = True,
) -> GCResult:
    """Unbiased Hutchinson estimate of GC with a standard error.

    Probes are processed ``probe_chunk`` at a time in one vectorised backward pass
    (``autograd.grad(..., is_grads_batched=True)``; ``probe_chunk=1`` gives a plain loop, and a model that
    cannot be vmapped falls back to the loop). Both give identical numbers for a given ``seed``.

    For each sample x (all inputs, or a uniform subset of ``n_samples`` of them — the sample budget) and
    each of ``n_probes`` output-space probes v with E[v vᵀ] = I (the probe budget):
    a(x, v) = ‖vᵀ ∂fn(x)/∂x‖², one VJP per probe, E_v a = ‖∂fn(x)/∂x‖²_F. GĈ = mean of a.

    Standard error: with all inputs, the only randomness is the probes,
    SE = √(Σ_x s²_x / m) / N with s²_x the across-probe variance of sample x (needs m ≥ 2; with m = 1 the
    between-sample spread std(a)/√N is returned, an upper bound). With input subsampling,
    SE = std_x(ā_x)/√n (ā_x the probe mean), which covers both sources of randomness.
    Variance per probe: 2‖JJᵀ‖²_F (Gaussian), 2(‖JJᵀ‖²_F − Σ_k (JJᵀ)²_kk) (Rademacher).
    """
    if int(n_probes) != n_probes or n_probes < 1:
        raise InputError(f"n_probes must be a positive integer, got {n_probes}.")
    if int(probe_chunk) != probe_chunk or probe_chunk < 1:
        raise InputError(f"probe_chunk must be a positive integer, got {probe_chunk}.")
    gen = torch.Generator().manual_seed(int(seed))
    data, subsampled = _subsample(inputs, n_samples, gen)
    rows: list[torch.Tensor] = []
    batched = probe_chunk > 1
    with _eval_mode(fn, eval_mode):
        for xb in _batches(data, batch_size):
            xg = xb.clone().requires_grad_(True)
            b = xb.shape[0]
            with torch.enable_grad():
                y = _flat_out(fn, xg)
                a = torch.empty(b, n_probes, dtype=torch.float64)
                j = 0
                while j < n_probes:
                    c = min(probe_chunk if batched else 1, n_probes - j)
                    v = torch.stack([_draw(tuple(y.shape), probe, gen, y) for _ in range(c)])  # (c, B, p)
                    last = j + c >= n_probes
                    if c > 1:
                        try:
                            (g,) = torch.autograd.grad(y, xg, grad_outputs=v, retain_graph=True, is_grads_batched=True)
                        except (RuntimeError, NotImplementedError):
                            batched = False  # e.g. an op without a batching rule: loop over the same probes
                            g = torch.stack([torch.autograd.grad(y, xg, grad_outputs=vi, retain_graph=True)[0] for vi in v])
                    else:
                        (g,) = torch.autograd.grad(y, xg, grad_outputs=v[0], retain_graph=not last)
                        g = g.unsqueeze(0)
                    a[:, j : j + c] = g.reshape(c, b, -1).pow(2).sum(dim=2).T.detach().double().cpu()
                    j += c
            rows.append(a)
    if not rows:
        raise InputError("no inputs were given.")
    a = torch.cat(rows).numpy()
    n = a.shape[0]
    per = a.mean(axis=1)
    if subsampled:
        se = float(per.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    elif n_probes >= 2:
        se = float(math.sqrt(a.var(axis=1, ddof=1).sum() / n_probes) / n)
    else:
        se = float(per.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return GCResult(float(per.mean()), se, int(n), int(n_probes), f"hutchinson-{probe}", per)


def geometric_complexity(fn: Fn, inputs: Any, *, n_probes: int | None = None, **kwargs: Any) -> GCResult:
    """Exact GC when ``n_probes`` is None, otherwise the stochastic estimate (see :func:`gc_stochastic`)."""
    if n_probes is None:
        return gc_exact(fn, inputs, **kwargs)
    return gc_stochastic(fn, inputs, n_probes=n_probes, **kwargs)


def per_class_gc(result: GCResult, labels: Any, n_classes: int | None = None) -> np.ndarray:
    """GC(f, Q_c) for each class c: the mean of ``result.per_sample`` over the samples of class c (NaN if none).

    ``labels`` must be aligned with the inputs in order (not valid after input subsampling).
    """
    y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels).astype(np.int64).reshape(-1)
    if y.shape[0] != result.per_sample.shape[0]:
        raise InputError(f"{y.shape[0]} labels for {result.per_sample.shape[0]} GC values; they must be aligned.")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    cnt = np.bincount(y, minlength=k).astype(float)
    tot = np.bincount(y, weights=result.per_sample, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / cnt


# ---------------------------------------------------------------------------------------------------------
# regulariser
# ---------------------------------------------------------------------------------------------------------
def gc_penalty(
    fn: Fn,
    x: torch.Tensor,
    *,
    n_probes: int = 1,
    probe: Probe = "rademacher",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Differentiable GĈ on the batch ``x``: (1/(B·m)) Σ_x Σ_j ‖v_jᵀ ∂fn(x)/∂x‖² (unbiased for the batch-mean
    ‖J‖²_F). Built with ``create_graph=True`` so ``penalty.backward()`` reaches the parameters (double backprop).
    ``fn`` is called as is (train/eval mode is the caller's; see :class:`GCRegularizer` for BatchNorm)."""
    if int(n_probes) != n_probes or n_probes < 1:
        raise InputError(f"n_probes must be a positive integer, got {n_probes}.")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    xg = _as_tensor(x).clone().requires_grad_(True)
    with torch.enable_grad():
        y = _flat_out(fn, xg)
        total = y.new_zeros(())
        for j in range(n_probes):
            v = _draw(tuple(y.shape), probe, gen, y)
            (g,) = torch.autograd.grad(y, xg, grad_outputs=v, create_graph=True, retain_graph=True)
            total = total + g.pow(2).sum()
    return total / (xg.shape[0] * n_probes)


class GCRegularizer:
    """``reg(x) = weight · GĈ(fn, x)`` to add to a training loss (Munn et al. 2024, App.: L + α·GC_batch).

    >>> reg = GCRegularizer(LayerTap(model, "avgpool"), weight=1e-3, n_probes=1, seed=0)
    >>> loss = criterion(model(x), y) + reg(x); loss.backward()

    BatchNorm layers of ``fn`` run in eval mode (running statistics, not updated) for the penalty's own
    forward pass when ``bn_eval`` (default), so the penalty is a sum of per-sample terms; the gradient then
    does not flow through batch statistics. Probe draws come from a private generator seeded by ``seed``.
    Whether the paper's α multiplies the batch mean or sum of ‖J‖²_F is not verified; this is the mean.
    """

    def __init__(
        self,
        fn: Fn,
        weight: float,
        *,
        n_probes: int = 1,
        probe: Probe = "rademacher",
        seed: int | None = 0,
        bn_eval: bool = True,
    ) -> None:
        if not math.isfinite(weight) or weight < 0:
            raise InputError(f"weight must be a finite non-negative number, got {weight}.")
        self.fn = fn
        self.weight = float(weight)
        self.n_probes = int(n_probes)
        self.probe = probe
        self.bn_eval = bn_eval
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight == 0:
            return torch.zeros((), dtype=x.dtype, device=x.device)
        with _bn_eval(self.fn, self.bn_eval):
            pen = gc_penalty(self.fn, x, n_probes=self.n_probes, probe=self.probe, generator=self.generator)
        return self.weight * pen

