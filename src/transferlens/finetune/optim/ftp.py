"""Fast Trainable Projection (FTP) as projected variants of torch.optim.SGD / Adam / AdamW.

Reference: J. Tian, Y.-C. Liu, J. S. Smith, Z. Kira, "Fast Trainable Projection for Robust Fine-Tuning",
NeurIPS 2023 (arXiv 2310.19182); official code github.com/GT-RIPL/FTP (``util/FTP.py`` @ 1f8dd44, MIT).
This is a clean-room reimplementation of the algorithm (spec: docs of the project, ``ftp.md`` §1.5).

One ``step()`` for every constrained tensor ``w`` with anchor (pretrained value) ``w0``:

1. base step (torch's own SGD/Adam/AdamW, unchanged):  ``w' = w - d``
2. unconstrained deviation:  ``c_t = w' - w0``;  row L1 norms ``n_t = Σ_{dims≥1} |c_t| + 1e-8``
   (1-D and 0-D tensors count as one row: their total L1 norm)
3. radius γ (one scalar per tensor).  First projection: ``γ = 1e-8``.  Later: the hyper-gradient
   ``∂L(W_{t-1})/∂γ_{t-1} = Σ ⟨g_t, c_{t-1}/n_{t-1}⟩`` reuses the current gradient ``g_t`` (taken at
   ``W_{t-1} = w0 + (γ_{t-1}/n_{t-1}) c_{t-1}``), positive values are scaled by ``k`` (annealing),
   γ takes one scalar Adam step (lr ``gamma_lr``=1e-2, betas (0.9, 0.999), eps 1e-8, bias correction
   with ``t`` = number of projections of this tensor + 1, as the reference) and is clipped to
   ``[1e-8, max_rows n_t]``
4. projection (radial shrink of each row onto the row-L1 / MARS ball):
   ``w = w0 + clamp(γ / n_t, 0, 1) · c_t``

Deliberate differences from the official code (bugs listed in the spec §1.6), none of which changes the
numbers of a run the official code handles correctly:

* state is keyed by parameter (``optimizer.state[p]``), not by a running position, so a tensor without
  a gradient in some step neither crashes nor shifts the buffers of the others (pitfall 1);
* ``state_dict()`` holds γ, its Adam moments, the stored direction ``c/n`` and the per-tensor step count,
  so a resumed run continues exactly; anchors are *not* in it (they are the pretrained weights, kept once:
  rebuild the optimizer from the same pretrained model, or save :meth:`anchor_state_dict` once and pass
  it as ``anchors=``); a fingerprint of shapes and anchors rejects a checkpoint of another model (pitfall 2);
* no host synchronisation: the sign test of the hyper-gradient and the clip are tensor ops, and the
  scalar γ updates of all tensors of a group are one vectorised computation (pitfall 3);
* the stored direction ``c/n`` replaces the reference's separate ``c`` and ``1/n`` buffers (same memory);
* exclusion names are checked: a name or pattern matching no parameter is an error (pitfall 5), and the
  DDP / DataParallel ``module.`` and torch.compile ``_orig_mod.`` prefixes are ignored when matching;
* γ and its moments are float32 (float64 for float64 parameters) even for half-precision parameters.

Under DistributedDataParallel nothing extra is needed: gradients are all-reduced before ``step()`` and
every rank runs the same deterministic ops, so γ is bit-identical on every rank.  Sharded parameters
(FSDP/ZeRO) are not supported: the row norms would need the full rows.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from transferlens.errors import InputError, UsageError

__all__ = [
    "FTPSGD",
    "FTPAdam",
    "FTPAdamW",
    "normalize_param_name",
    "split_excluded",
    "row_l1",
]

_PREFIXES = ("module.", "_orig_mod.")
_NORM_EPS = 1e-8  # added to every row norm, as the reference
_GAMMA_MIN = 1e-8  # lower clip of γ, as the reference
_FTP_SCALARS = ("ftp_gamma", "ftp_gamma_exp_avg", "ftp_gamma_exp_avg_sq")
_STATE_VERSION = 1


# --------------------------------------------------------------------------------------------- helpers


def normalize_param_name(name: str) -> str:
    """Strip wrapper prefixes (``module.`` of DDP/DataParallel, ``_orig_mod.`` of torch.compile)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                changed = True
    return name


def _name_matches(name: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern


def split_trainable(model: nn.Module, entries: Any, what: str) -> tuple[list[tuple[str, Tensor]], list[bool]]:
    """Trainable ``(name, parameter)`` pairs of ``model`` and, for each, whether ``entries`` (names,
    patterns or tensors; one or many) select it. Raises InputError for a model with nothing trainable or
    an entry that selects nothing (``what`` names the entries in the message, e.g. "L2-SP head")."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise InputError("the model has no trainable parameters; unfreeze the layers to fine-tune")
    listed = list(entries) if not isinstance(entries, str | Tensor) else [entries]
    flags, hit = split_excluded(named, listed)
    missing = [e if isinstance(e, str) else "<tensor>" for i, e in enumerate(listed) if i not in hit]
    if missing:
        raise InputError(f"{what} entries {missing} match no trainable parameter of the model")
    return named, flags


def split_excluded(
    named_params: Sequence[tuple[str | None, Tensor]],
    exclude: Sequence[str | Tensor] = (),
) -> tuple[list[bool], set[int]]:
    """Flag which parameters are excluded; entries are exact names, fnmatch patterns or parameter objects.

    Returns ``(excluded_flags, hit)`` where ``hit`` holds the indices of the ``exclude`` entries that matched
    at least one parameter (callers turn the others into an error).  Names are compared after
    :func:`normalize_param_name` on both sides.
    """
    for item in exclude:
        if not isinstance(item, str | Tensor):
            raise UsageError(
                f"exclude entries must be parameter names or parameter tensors, got {type(item).__name__}"
            )
    pats = [(i, normalize_param_name(e)) for i, e in enumerate(exclude) if isinstance(e, str)]
    objs = [(i, e) for i, e in enumerate(exclude) if isinstance(e, Tensor)]
    flags: list[bool] = []
    hit: set[int] = set()
    for name, p in named_params:
        nname = normalize_param_name(name) if name is not None else None
        matched = {i for i, e in objs if e is p}
        if nname is not None:
            matched |= {i for i, pat in pats if _name_matches(nname, pat)}
        hit |= matched
        flags.append(bool(matched))
    return flags, hit


def row_l1(t: Tensor) -> Tensor:
    """Row-wise L1 norm over all dims but the first, ``keepdim`` (shape ``[out, 1, ...]``).

    Tensors with fewer than 2 dims are a single row: the result is their total L1 norm (shape ``[1]``
    for 1-D, ``[]`` for 0-D), which pins the behaviour the reference gets from ``sum(dim=())``.
    """
    if t.dim() == 0:
        return torch.linalg.vector_norm(t, 1)
    if t.dim() == 1:
        return torch.linalg.vector_norm(t, 1).reshape(1)
    return torch.linalg.vector_norm(t, 1, dim=tuple(range(1, t.dim())), keepdim=True)


def _gamma_dtype(p: Tensor) -> torch.dtype:
    return torch.float64 if p.dtype == torch.float64 else torch.float32


def _named_params_from(params: Any) -> Any:
    """Accept an nn.Module (its trainable named parameters) or whatever torch.optim accepts."""
    if isinstance(params, nn.Module):
        named = [(n, p) for n, p in params.named_parameters() if p.requires_grad]
        if not named:
            raise InputError(
                "the model has no trainable parameters (every parameter has requires_grad=False); "
                "unfreeze the layers to fine-tune before building the optimizer"
            )
        return named
    if isinstance(params, Tensor):
        raise UsageError("pass an iterable of parameters, (name, parameter) pairs or an nn.Module")
    params = list(params)
    if not params:
        raise InputError("the optimizer got no parameters; pass model.named_parameters() or the model")
    return params


# ------------------------------------------------------------------------------------------ the mixin


class _FTPMixin:
    """FTP projection layered on a torch.optim base class (SGD / Adam / AdamW); see the module doc."""

    _ftp_base: type[torch.optim.Optimizer]
    state: Any
    param_groups: list[dict[str, Any]]

    def _ftp_configure(
        self,
        exclude: Iterable[str | Tensor],
        anchors: Mapping[str, Tensor] | None,
        k: float,
        gamma_lr: float,
        gamma_betas: tuple[float, float],
        gamma_eps: float,
        gamma_init: float,
    ) -> None:
        if not 0.0 <= float(k) <= 1.0:
            raise UsageError(f"FTP annealing factor k must lie in [0, 1] (1 = strongest), got {k}")
        if not float(gamma_lr) > 0.0:
            raise UsageError(f"FTP gamma_lr must be > 0, got {gamma_lr}")
        b1, b2 = (float(b) for b in gamma_betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise UsageError(f"FTP gamma_betas must lie in [0, 1), got {gamma_betas}")
        if not float(gamma_init) >= _GAMMA_MIN:
            raise UsageError(f"FTP gamma_init must be >= {_GAMMA_MIN}, got {gamma_init}")
        self._ftp_exclude = list(exclude) if not isinstance(exclude, (str, Tensor)) else [exclude]
        self._ftp_anchor_source = (
            {normalize_param_name(n): t for n, t in anchors.items()} if anchors is not None else None
        )
        self._ftp_hyper = dict(
            ftp_k=float(k),
            ftp_gamma_lr=float(gamma_lr),
            ftp_gamma_betas=(b1, b2),
            ftp_gamma_eps=float(gamma_eps),
            ftp_gamma_init=float(gamma_init),
        )
        self._ftp_anchor: dict[Tensor, Tensor] = {}
        self._ftp_name: dict[Tensor, str] = {}
        self._ftp_hit: set[int] = set()
        # unwrap torch's profiling/hook wrapper of the base step so hooks run once, in our own step()
        base_step = self._ftp_base.step
        while getattr(base_step, "hooked", False):
            base_step = base_step.__wrapped__  # type: ignore[attr-defined]
        self._ftp_base_step: Callable[..., Any] = base_step

    def _ftp_finish_init(self) -> None:
        unmatched = [
            e if isinstance(e, str) else f"<tensor of shape {tuple(e.shape)}>"
            for i, e in enumerate(self._ftp_exclude)
            if i not in self._ftp_hit
        ]
        if unmatched:
            names = [n for g in self.param_groups for n in g.get("param_names", [])]
            shown = ", ".join(sorted(normalize_param_name(n) for n in names)[:12])
            raise InputError(
                f"FTP exclude entries {unmatched} match no optimised parameter; names must match "
                f"model.named_parameters() (wrapper prefixes 'module.'/'_orig_mod.' are ignored, "
                f"fnmatch patterns like 'head.*' are allowed). Parameter names start: {shown} ..."
            )
        for group in self.param_groups:
            lr = group.get("lr")
            if lr is not None and not float(lr) > 0.0:
                raise UsageError(f"learning rate must be > 0, got {float(lr)}")
            if group.get("maximize", False):
                raise UsageError("FTP does not support maximize=True; negate the loss instead")
            if group.get("differentiable", False):
                raise UsageError("FTP does not support differentiable=True")

    def add_param_group(self, param_group: dict[str, Any]) -> None:  # noqa: D102 (torch contract)
        super().add_param_group(param_group)  # type: ignore[misc]
        group = self.param_groups[-1]
        for key, value in self._ftp_hyper.items():
            group.setdefault(key, value)
        params: list[Tensor] = group["params"]
        names: list[str | None] = list(group.get("param_names", [None] * len(params)))
        if any(isinstance(e, str) for e in self._ftp_exclude) and names and names[0] is None:
            raise UsageError(
                "FTP exclusion by name needs named parameters: pass model.named_parameters() "
                "(or the model) instead of model.parameters(), or exclude parameter objects"
            )
        flags, hit = split_excluded(list(zip(names, params)), self._ftp_exclude)
        self._ftp_hit |= hit
        for i, (name, p, excluded) in enumerate(zip(names, params, flags)):
            if excluded:
                continue
            gi = len(self.param_groups) - 1
            label = normalize_param_name(name) if name is not None else f"param_groups[{gi}][{i}]"
            self._ftp_name[p] = label
            self._ftp_anchor[p] = self._ftp_make_anchor(p, label, name is not None)

    def _ftp_make_anchor(self, p: Tensor, label: str, named: bool) -> Tensor:
        src = self._ftp_anchor_source
        if src is None:
            return p.detach().clone()
        if not named:
            raise UsageError("FTP anchors given by name need named parameters (pass model.named_parameters())")
        if label not in src:
            raise InputError(
                f"parameter '{label}' has no pretrained counterpart in `anchors`; add it to `exclude` "
                f"(e.g. a new classification head) or pass the full pretrained state dict"
            )
        a = src[label]
        if tuple(a.shape) != tuple(p.shape):
            raise InputError(
                f"anchor for '{label}' has shape {tuple(a.shape)} but the parameter has {tuple(p.shape)}; "
                f"the anchors come from a different model, or exclude '{label}'"
            )
        return a.detach().to(device=p.device, dtype=p.dtype).clone()

    # ---------------------------------------------------------------------------------------- step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One base optimiser step followed by the FTP radius update and projection."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans = []
        for group in self.param_groups:
            active = [p for p in group["params"] if p.grad is not None and p in self._ftp_anchor]
            # hyper-gradients need the raw gradient at W_{t-1}: take them before the base step
            old = [p for p in active if self.state[p].get("ftp_step", 0) > 0]
            hyper = [self._ftp_hypergrad(p) for p in old]
            plans.append((group, active, old, hyper))
        self._ftp_base_step(self)
        for group, active, old, hyper in plans:
            if active:
                self._ftp_project_group(group, active, old, hyper)
        return loss

    def _ftp_hypergrad(self, p: Tensor) -> Tensor:
        """``Σ <g, c_{t-1}/n_{t-1}>`` as a 0-d tensor (a 1×N gemv: vectorised and multi-threaded on CPU)."""
        gd = _gamma_dtype(p)
        u = self.state[p]["ftp_dir"].reshape(1, -1).to(gd)
        return torch.mv(u, p.grad.reshape(-1).to(gd)).reshape(())

    def _ftp_project_group(
        self, group: dict[str, Any], active: list[Tensor], old: list[Tensor], hyper: list[Tensor]
    ) -> None:
        inv_norms: dict[Tensor, Tensor] = {}
        max_norms: dict[Tensor, Tensor] = {}
        for p in active:
            st = self.state[p]
            d = st.get("ftp_dir")
            if d is None:
                d = st["ftp_dir"] = torch.empty_like(p, memory_format=torch.preserve_format)
            torch.sub(p, self._ftp_anchor[p], out=d)  # c_t = (w - step) - w0
            n = row_l1(d).add_(_NORM_EPS)
            max_norms[p] = n.max()
            inv_norms[p] = n.reciprocal_()
        # first projection of a tensor: γ = gamma_init, moments 0 (reference: t == 1)
        for p in active:
            st = self.state[p]
            if st.get("ftp_step", 0) == 0:
                opts = dict(dtype=_gamma_dtype(p), device=p.device)
                st["ftp_gamma"] = torch.full((), group["ftp_gamma_init"], **opts)
                st["ftp_gamma_exp_avg"] = torch.zeros((), **opts)
                st["ftp_gamma_exp_avg_sq"] = torch.zeros((), **opts)
        # vectorised scalar Adam on γ for tensors seen before, bucketed by (device, dtype)
        buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, p in enumerate(old):
            buckets.setdefault((p.device, _gamma_dtype(p)), []).append(i)
        b1, b2 = group["ftp_gamma_betas"]
        for idx in buckets.values():
            ps = [old[i] for i in idx]
            sts = [self.state[p] for p in ps]
            grad = torch.stack([hyper[i] for i in idx])
            grad = torch.where(grad > 0, grad * group["ftp_k"], grad)  # anneal positive grads only
            gamma = torch.stack([s["ftp_gamma"] for s in sts])
            m = torch.stack([s["ftp_gamma_exp_avg"] for s in sts]).mul_(b1).add_(grad, alpha=1 - b1)
            v = torch.stack([s["ftp_gamma_exp_avg_sq"] for s in sts]).mul_(b2).addcmul_(grad, grad, value=1 - b2)
            steps = [s["ftp_step"] + 1 for s in sts]  # the reference's global t
            bc = torch.tensor([[1 - b1**t for t in steps], [1 - b2**t for t in steps]], dtype=gamma.dtype)
            bc1, bc2 = bc.to(gamma.device, non_blocking=True).unbind()
            upd = (m / bc1) / ((v / bc2).sqrt_().add_(group["ftp_gamma_eps"]))
            gamma = gamma - group["ftp_gamma_lr"] * upd
            nmax = torch.stack([max_norms[p].to(gamma.dtype) for p in ps])
            gamma = torch.minimum(gamma.clamp_min_(_GAMMA_MIN), nmax)  # hardtanh(γ, 1e-8, max n)
            torch._foreach_copy_([s["ftp_gamma"] for s in sts], list(gamma.unbind()))
            torch._foreach_copy_([s["ftp_gamma_exp_avg"] for s in sts], list(m.unbind()))
            torch._foreach_copy_([s["ftp_gamma_exp_avg_sq"] for s in sts], list(v.unbind()))
        # projection  w = w0 + clamp(γ/n, 0, 1) c ;  keep u = c/n for the next hyper-gradient
        for p in active:
            st = self.state[p]
            d = st["ftp_dir"]
            inv_n = inv_norms[p]
            ratio = (st["ftp_gamma"].to(p.dtype) * inv_n).clamp_(0.0, 1.0)
            torch.addcmul(self._ftp_anchor[p], ratio, d, out=p)
            d.mul_(inv_n)
            st["ftp_step"] = st.get("ftp_step", 0) + 1

    # ------------------------------------------------------------------------------ state / anchors

    def _ftp_positions(self) -> list[tuple[int, int, Tensor]]:
        out, idx = [], 0
        for gi, g in enumerate(self.param_groups):
            for p in g["params"]:
                out.append((idx, gi, p))
                idx += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """torch's optimizer state plus an ``"ftp"`` entry (shapes, constrained flags, anchor fingerprint).

        γ, its moments, the stored direction and the step count are ordinary per-parameter state
        (keys ``ftp_*``); anchors are not included (see :meth:`anchor_state_dict`).
        """
        sd = super().state_dict()  # type: ignore[misc]
        info = []
        for _, _, p in self._ftp_positions():
            a = self._ftp_anchor.get(p)
            fp = None
            if a is not None:
                a64 = a.detach().to(torch.float64)
                fp = [float(a64.sum()), float(a64.square().sum())]
            info.append({"shape": list(p.shape), "constrained": a is not None, "anchor": fp})
        sd["ftp"] = {"version": _STATE_VERSION, "params": info}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict` of an FTP optimiser over the same model and anchors."""
        if "ftp" not in state_dict:
            raise InputError(
                "this optimizer state was not saved by an FTP optimizer (no 'ftp' entry); "
                "resume from a checkpoint written by the same FTP optimizer"
            )
        info = state_dict["ftp"]["params"]
        here = self._ftp_positions()
        if len(info) != len(here) or len(state_dict["param_groups"]) != len(self.param_groups):
            raise InputError(
                f"checkpoint has {len(info)} parameters in {len(state_dict['param_groups'])} groups, this "
                f"optimizer {len(here)} in {len(self.param_groups)}: the checkpoint is from a different model"
            )
        for rec, (idx, _gi, p) in zip(info, here):
            label = self._ftp_name.get(p, f"parameter #{idx}")
            if list(p.shape) != list(rec["shape"]):
                raise InputError(
                    f"checkpoint parameter #{idx} ('{label}') has shape {rec['shape']}, the model "
                    f"{list(p.shape)}: the checkpoint is from a different model"
                )
            if bool(rec["constrained"]) != (p in self._ftp_anchor):
                raise InputError(
                    f"parameter '{label}' is {'constrained' if rec['constrained'] else 'excluded'} in the "
                    f"checkpoint but not here: build the optimizer with the same `exclude` list"
                )
            if rec["anchor"] is not None:
                a64 = self._ftp_anchor[p].detach().to(torch.float64)
                now = (float(a64.sum()), float(a64.square().sum()))
                for x, y in zip(now, rec["anchor"]):
                    if not math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6 * (1.0 + abs(now[1]))):
                        raise InputError(
                            f"the anchor (pretrained value) of '{label}' differs from the one the checkpoint "
                            f"was trained with; build the optimizer from the same pretrained weights"
                        )
        # keep γ & co. in their own dtype: torch would cast them to the parameter dtype
        stripped: dict[Any, Any] = {}
        scalars: dict[Any, dict[str, Tensor]] = {}
        for key, st in state_dict["state"].items():
            stripped[key] = {k: v for k, v in st.items() if k not in _FTP_SCALARS}
            scalars[key] = {k: v for k, v in st.items() if k in _FTP_SCALARS}
        base = {k: v for k, v in state_dict.items() if k not in ("ftp", "state")}
        base["state"] = stripped
        super().load_state_dict(base)  # type: ignore[misc]
        for idx, _gi, p in here:
            for k, v in scalars.get(idx, {}).items():
                self.state[p][k] = v.detach().to(device=p.device, dtype=_gamma_dtype(p)).clone()

    def anchor_state_dict(self) -> dict[str, Tensor]:
        """Anchors by (normalised) parameter name; save once and pass back as ``anchors=`` to rebuild."""
        return {self._ftp_name[p]: a for p, a in self._ftp_anchor.items()}

    @property
    def constrained_names(self) -> list[str]:
        """Names of the projected tensors, in optimiser order."""
        return [self._ftp_name[p] for _, _, p in self._ftp_positions() if p in self._ftp_anchor]

    @torch.no_grad()
    def gammas(self) -> dict[str, Tensor]:
        """Current radius γ per constrained tensor (0-d device tensors; no host sync)."""
        return {
            self._ftp_name[p]: self.state[p]["ftp_gamma"]
            for _, _, p in self._ftp_positions()
            if p in self._ftp_anchor and "ftp_gamma" in self.state[p]
        }

    @torch.no_grad()
    def trace(self) -> list[dict[str, Any]]:
        """Per constrained tensor: γ, max row-L1 distance to the anchor, fraction of rows on the boundary.

        Synchronises with the device (meant for logging every N steps).  Before the first step γ is None.
        """
        out = []
        for _, _, p in self._ftp_positions():
            a = self._ftp_anchor.get(p)
            if a is None:
                continue
            dist = row_l1(p.detach() - a).reshape(-1)
            g = self.state[p].get("ftp_gamma")
            gv = None if g is None else float(g)
            frac = None if gv is None else float((dist >= gv * (1 - 1e-4)).float().mean())
            out.append(
                {"name": self._ftp_name[p], "gamma": gv, "max_row_l1": float(dist.max()), "frac_on_boundary": frac}
            )
        return out


def _ftp_doc(base: str) -> str:
    return f"""{base} with Fast Trainable Projection (Tian et al., NeurIPS 2023; github.com/GT-RIPL/FTP).

    Args:
        params: an ``nn.Module`` (its trainable named parameters), ``model.named_parameters()``, a list of
            parameters, or param groups (dicts) of either; names are needed for exclusion by name.
        *args, **kwargs: exactly those of ``torch.optim.{base}`` (``lr`` must be > 0).
        exclude: parameters with no pretrained counterpart (e.g. a new head), by name, fnmatch pattern
            (``"head.*"``) or parameter object.  They get the plain base step.  An entry that matches no
            parameter is an InputError.
        anchors: pretrained values by parameter name (e.g. a pretrained ``state_dict()``); default: the
            parameters' values when the optimizer is built.
        k: annealing factor of positive γ hyper-gradients in [0, 1] (1 = reference default, strongest).
        gamma_lr, gamma_betas, gamma_eps: the scalar Adam that updates γ (reference: 1e-2, (0.9, 0.999), 1e-8).
        gamma_init: γ after the first projection (reference 1e-8, i.e. the first step returns to the anchor).

    Example (the constrained layer 0 stays at its anchor after the first step, the excluded head moves by lr)::

        >>> import torch
        >>> from transferlens.finetune import FTP{base}
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        >>> w0, h0 = net[0].weight.detach().clone(), net[1].weight.detach().clone()
        >>> opt = FTP{base}(net, lr=1e-2, exclude=["1.*"])
        >>> net(torch.randn(8, 4)).pow(2).mean().backward(); opt.step()
        >>> with torch.no_grad(): print(bool((net[0].weight - w0).abs().sum(1).max() <= 1e-8), (net[1].weight - h0).abs().max() > 0)
        True tensor(True)
    """


def _make_ftp_class(name: str, base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    def __init__(  # noqa: N807
        self: Any,
        params: Any,
        *args: Any,
        exclude: Iterable[str | Tensor] = (),
        anchors: Mapping[str, Tensor] | None = None,
        k: float = 1.0,
        gamma_lr: float = 1e-2,
        gamma_betas: tuple[float, float] = (0.9, 0.999),
        gamma_eps: float = 1e-8,
        gamma_init: float = 1e-8,
        **kwargs: Any,
    ) -> None:
        self._ftp_configure(exclude, anchors, k, gamma_lr, gamma_betas, gamma_eps, gamma_init)
        params = _named_params_from(params)
        try:
            base.__init__(self, params, *args, **kwargs)
        except ValueError as exc:
            if isinstance(exc, InputError | UsageError):
                raise
            raise UsageError(f"invalid {base.__name__} argument: {exc}") from exc
        # GradScaler must unscale .grad before step(): the hyper-gradient reads the raw gradient
        self._step_supports_amp_scaling = False
        self._ftp_finish_init()

    cls = type(name, (_FTPMixin, base), {"__init__": __init__, "_ftp_base": base, "__doc__": _ftp_doc(base.__name__)})
    cls.__module__ = __name__
    return cls


FTPSGD = _make_ftp_class("FTPSGD", torch.optim.SGD)
"""torch.optim.SGD + FTP (the reference's ``SGDP``; coupled weight decay as SGD)."""
FTPAdam = _make_ftp_class("FTPAdam", torch.optim.Adam)
"""torch.optim.Adam + FTP (the reference's ``AdamP`` with weight_decay=0)."""
FTPAdamW = _make_ftp_class("FTPAdamW", torch.optim.AdamW)
"""torch.optim.AdamW + FTP (the reference's ``AdamP`` with decoupled weight decay)."""
