"""Model-aware measures: geometric complexity and loss-surface flatness (torch; loaded on first use).

- geometric complexity (:mod:`.complexity`, Dherin et al., NeurIPS 2022): GC(f) = E_x ‖∂f(x)/∂x‖²_F, the
  mean squared Frobenius norm of the input-output Jacobian: ``gc_exact`` (all output rows), ``gc_stochastic``
  (Hutchinson probes, unbiased), ``geometric_complexity`` (either), ``per_class_gc``, ``GCRegularizer`` /
  ``gc_penalty`` (the penalty λ·GC as a training term), ``LayerTap`` (GC of a hidden layer);
- flatness (:mod:`.flatness`): ``hessian_trace`` (Hutchinson), ``hessian_top_eigenvalue`` (power iteration),
  ``HessianOperator`` (Hessian-vector products);
- ``geometry_report(model, data)``: what ``transferlens geometry`` computes per layer (NC, ranks, few-shot, GC).

Example::

    >>> import torch
    >>> from transferlens.geometry import gc_exact
    >>> lin = torch.nn.Linear(3, 2, bias=False)
    >>> with torch.no_grad(): _ = lin.weight.copy_(torch.tensor([[1., 2., 0.], [0., 0., 3.]]))
    >>> gc_exact(lin, torch.randn(5, 3)).value   # a linear map: ‖W‖²_F = 1 + 4 + 9 at every x
    14.0
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "LayerTap": ".complexity",
    "GCResult": ".complexity",
    "gc_exact": ".complexity",
    "gc_stochastic": ".complexity",
    "geometric_complexity": ".complexity",
    "per_class_gc": ".complexity",
    "gc_penalty": ".complexity",
    "GCRegularizer": ".complexity",
    "HessianOperator": ".flatness",
    "TraceResult": ".flatness",
    "EigResult": ".flatness",
    "hessian_trace": ".flatness",
    "hessian_top_eigenvalue": ".flatness",
    "geometry_report": ".report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
