"""Loss-surface flatness from Hessian-vector products: Hessian trace (Hutchinson) and top eigenvalue.

H v is computed by double backprop, ``∂/∂θ ⟨∇_θ L, v⟩`` (Pearlmutter 1994), never forming H. For a single
batch the gradient graph is built once and reused for every product; for several batches every product
re-runs each batch and averages with weights n_b/N (bounded memory, as PyHessian's dataloader mode).

* Trace: Hutchinson (1990), Tr H = E_v[vᵀHv] with Rademacher v; mean ± standard error over probes.
  (``amirgholami/PyHessian`` ``hessian.trace`` returns the *list* of samples; take its mean to compare.)
* Top eigenvalue: ``method="lanczos"`` — the largest *algebraic* eigenvalue via ARPACK's implicitly
  restarted Lanczos (``scipy.sparse.linalg.eigsh``, which="LA"); ``method="power"`` — power iteration
  v ← Hv/‖Hv‖, λ = vᵀHv (Yao et al., PyHessian, 2020), which converges to the eigenvalue of largest
  *magnitude* (they differ when the most negative curvature dominates).

Models given through :meth:`HessianOperator.from_model` are evaluated in ``eval()`` mode (as PyHessian
does) so BatchNorm/Dropout are deterministic; the previous modes are restored afterwards.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InputError

__all__ = ["HessianOperator", "TraceResult", "EigResult", "hessian_trace", "hessian_top_eigenvalue", "flatness"]


@dataclass(frozen=True)
class TraceResult:
    value: float
    se: float
    n_probes: int
    samples: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("samples")
        return d


@dataclass(frozen=True)
class EigResult:
    value: float
    n_matvec: int
    converged: bool
    method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HessianOperator:
    """θ ↦ H v for the Hessian H of a scalar loss w.r.t. ``params``.

    ``terms`` is a list of ``(loss_fn, weight)``; ``loss_fn()`` returns a scalar tensor and H = Σ w_b H_b.
    Use :meth:`from_closure` for one closure or :meth:`from_model` for a model, a criterion and batches.
    """

    def __init__(
        self,
        terms: Sequence[tuple[Callable[[], torch.Tensor], float]],
        params: Sequence[torch.Tensor],
        *,
        module: nn.Module | None = None,
        eval_mode: bool = False,
    ) -> None:
        self.params = [p for p in params]
        if not self.params:
            raise InputError("no parameters to differentiate: pass params with requires_grad=True.")
        if any(not p.requires_grad for p in self.params):
            raise InputError("every parameter in params must have requires_grad=True.")
        if not terms:
            raise InputError("no loss terms (empty data).")
        self.terms = list(terms)
        self.module = module
        self.eval_mode = eval_mode
        self.dim = int(sum(p.numel() for p in self.params))
        self.n_matvec = 0
        self._cached: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def from_closure(cls, loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]) -> "HessianOperator":
        """H of ``loss_fn()`` (e.g. a loss over a fixed data subset) w.r.t. ``params``."""
        return cls([(loss_fn, 1.0)], params)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: Any,
        *,
        params: Sequence[torch.Tensor] | None = None,
        eval_mode: bool = True,
    ) -> "HessianOperator":
        """H of the mean loss ``criterion(model(x), y)`` over ``data`` = (x, y) or an iterable of (x, y)
        batches (criterion must average over its batch). ``params`` defaults to all trainable parameters."""
        if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
            batches = [tuple(data)]
        else:
            batches = [tuple(b) for b in data]
        if not batches:
            raise InputError("data is empty; pass (x, y) or a list of (x, y) batches.")
        sizes = [int(b[0].shape[0]) for b in batches]
        n = float(sum(sizes))
        for xb, _ in batches:
            if xb.is_floating_point() and not torch.isfinite(xb).all():
                raise InputError("inputs contain NaN or Inf; drop or impute those samples.")
        terms = [((lambda xb=xb, yb=yb: criterion(model(xb), yb)), s / n) for (xb, yb), s in zip(batches, sizes)]
        ps = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
        return cls(terms, ps, module=model, eval_mode=eval_mode)

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        if self.module is None or not self.eval_mode:
            yield
            return
        saved = [(m, m.training) for m in self.module.modules()]
        try:
            self.module.eval()
            yield
        finally:
            for m, t in saved:
                m.training = t

    def _grads(self, loss_fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, ...]:
        with torch.enable_grad():
            loss = loss_fn()
            if loss.ndim != 0:
                raise InputError(f"the loss must be a scalar, got shape {tuple(loss.shape)}; average it over the batch.")
            if not torch.isfinite(loss):
                raise InputError("the loss is NaN or Inf at these parameters; cannot compute curvature.")
            return torch.autograd.grad(loss, self.params, create_graph=True)

    def matvec(self, v: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """H v for ``v`` shaped like ``params`` (list of tensors)."""
        self.n_matvec += 1
        out = [torch.zeros_like(p) for p in self.params]
        with self._mode():
            if len(self.terms) == 1:
                if self._cached is None:
                    self._cached = self._grads(self.terms[0][0])
                grads_list = [(self._cached, self.terms[0][1], True)]
            else:
                grads_list = ((self._grads(fn), w, False) for fn, w in self.terms)
            for grads, w, keep in grads_list:
                with torch.enable_grad():
                    hv = torch.autograd.grad(grads, self.params, grad_outputs=list(v), retain_graph=keep, allow_unused=True)
                for o, h in zip(out, hv):
                    if h is not None:
                        o.add_(h.detach(), alpha=w)
        return out

    # flat float64 numpy interface (for scipy)
    def _unflatten(self, x: np.ndarray) -> list[torch.Tensor]:
        out, i = [], 0
        for p in self.params:
            k = p.numel()
            out.append(torch.as_tensor(x[i : i + k], dtype=p.dtype, device=p.device).reshape(p.shape))
            i += k
        return out

    def matvec_flat(self, x: np.ndarray) -> np.ndarray:
        hv = self.matvec(self._unflatten(np.asarray(x, dtype=np.float64).reshape(-1)))
        return torch.cat([h.reshape(-1) for h in hv]).detach().double().cpu().numpy()


def hessian_trace(
    op: HessianOperator,
    *,
    n_probes: int = 100,
    tol: float | None = None,
    min_probes: int = 10,
    seed: int = 0,
) -> TraceResult:
    """Hutchinson estimate Tr H ≈ (1/m) Σ_j v_jᵀ H v_j with Rademacher v_j; SE = sd/√m.

    With ``tol``, stop once |mean_j − mean_{j−1}| / (|mean_{j−1}| + 1e-6) < tol after ``min_probes``
    (PyHessian's rule, with the absolute value in the denominator).
    """
    if int(n_probes) != n_probes or n_probes < 1:
        raise InputError(f"n_probes must be a positive integer, got {n_probes}.")
    gen = torch.Generator().manual_seed(int(seed))
    samples: list[float] = []
    prev = None
    for _ in range(int(n_probes)):
        v = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(dtype=p.dtype, device=p.device) for p in op.params]
        hv = op.matvec(v)
        samples.append(float(sum((a * b).sum() for a, b in zip(v, hv)).item()))
        mean = float(np.mean(samples))
        if tol is not None and prev is not None and len(samples) >= min_probes:
            if abs(mean - prev) / (abs(prev) + 1e-6) < tol:
                break
        prev = mean
    s = np.asarray(samples)
    se = float(s.std(ddof=1) / math.sqrt(s.size)) if s.size > 1 else float("nan")
    return TraceResult(float(s.mean()), se, int(s.size), s)


def hessian_top_eigenvalue(
    op: HessianOperator,
    *,
    method: Literal["lanczos", "power"] = "lanczos",
    n_iter: int = 200,
    tol: float = 1e-6,
    seed: int = 0,
) -> EigResult:
    """Top Hessian eigenvalue: largest algebraic (``"lanczos"``, scipy ARPACK) or largest-magnitude
    (``"power"``, stops when |λ_t − λ_{t−1}| / (|λ_{t−1}| + 1e-6) < tol) within ``n_iter`` products."""
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(op.dim)
    start = op.n_matvec
    if method == "lanczos":
        from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

        if op.dim == 1:
            lam = float(op.matvec_flat(np.ones(1))[0])
            return EigResult(lam, op.n_matvec - start, True, "lanczos")
        lin = LinearOperator((op.dim, op.dim), matvec=op.matvec_flat, dtype=np.float64)
        ncv = min(op.dim, 20) if op.dim > 2 else None
        try:
            vals = eigsh(lin, k=1, which="LA", v0=v0, tol=tol, maxiter=n_iter, ncv=ncv, return_eigenvectors=False)
            return EigResult(float(vals[0]), op.n_matvec - start, True, "lanczos")
        except ArpackNoConvergence as exc:
            vals = exc.eigenvalues
            lam = float(vals[0]) if len(vals) else float("nan")
            return EigResult(lam, op.n_matvec - start, False, "lanczos")
    if method != "power":
        raise InputError(f"method must be 'lanczos' or 'power', got {method!r}.")
    x = v0 / np.linalg.norm(v0)
    lam_prev = None
    lam = float("nan")
    converged = False
    for _ in range(int(n_iter)):
        hx = op.matvec_flat(x)
        lam = float(x @ hx)
        nrm = np.linalg.norm(hx)
        if nrm == 0:
            lam, converged = 0.0, True
            break
        x = hx / nrm
        if lam_prev is not None and abs(lam - lam_prev) / (abs(lam_prev) + 1e-6) < tol:
            converged = True
            break
        lam_prev = lam
    return EigResult(lam, op.n_matvec - start, converged, "power")


def flatness(
    model: nn.Module,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any,
    *,
    n_probes: int = 50,
    method: Literal["lanczos", "power"] = "lanczos",
    n_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """``hessian_trace`` (± SE) and ``hessian_top_eig`` of the mean loss over ``data`` in one dict."""
    op = HessianOperator.from_model(model, criterion, data)
    tr = hessian_trace(op, n_probes=n_probes, seed=seed)
    ev = hessian_top_eigenvalue(op, method=method, n_iter=n_iter, tol=tol, seed=seed)
    return {
        "hessian_trace": tr.value,
        "hessian_trace_se": tr.se,
        "hessian_trace_probes": float(tr.n_probes),
        "hessian_top_eig": ev.value,
        "hessian_top_eig_converged": float(ev.converged),
        "n_params": float(op.dim),
    }
