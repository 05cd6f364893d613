"""One-call UFM study: solve, compare with theory, certify critical points, escape, d-sweep; record + plots.

``run_ufm(UFMRunConfig(...))`` returns a :class:`UFMRunResult` whose ``checks`` list every comparison with
the closed forms of :mod:`transferlens.ufm.theory` (measured, expected, tolerance, pass); ``write_outputs``
writes ``ufm.json`` (a ``kind="ufm"`` record) and PNG plots. Used by ``transferlens ufm``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh
from threadpoolctl import threadpool_limits

from ..errors import UsageError
from ..io import ensure_writable_dir, write_record
from . import theory as T
from .landscape import certify, escape_run, origin_point, padded_block_prediction, padded_optimum
from .objectives import UFMProblem
from .solver import gradient_descent, record_steps, solve_lbfgs

RECORD_KIND = "ufm"

# tolerances of the acceptance checks (spec section 7A)
TOL_VALUE = 1e-6
TOL_NORM_REL = 1e-5
TOL_NC = 1e-6
TOL_BALANCE = 1e-8


@dataclass(frozen=True)
class UFMRunConfig:
    loss: str = "ce"
    K: int = 10
    d: int = 10
    n: int = 5
    lambda_w: float = 5e-3
    lambda_h: float = 5e-3
    lambda_b: float = 0.0
    bias: str = "free"
    seed: int = 0
    n_seeds: int = 3
    gd_steps: int = 3000
    lr: float | None = None  # None: 0.9 / lambda_max(Hessian) over {start, optimum}
    escape_eps: tuple[float, ...] = (1e-4, 1e-6, 1e-8)
    escape_steps: int = 20000
    d_low: int | None = None  # padded saddle from this dimension; None: (K-1)//2
    sweep_dims: tuple[int, ...] | None = None  # None: 1..K+2
    dense_limit: int = 3000

    def problem(self) -> UFMProblem:
        return UFMProblem(self.loss, self.K, self.d, self.n, self.lambda_w, self.lambda_h, self.lambda_b, self.bias)


@dataclass
class Check:
    name: str
    measured: float | int | None
    expected: float | int | str | None
    tol: float | None
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UFMRunResult:
    config: UFMRunConfig
    theory: dict | None
    solves: list[dict]
    certificates: dict
    trajectory: dict
    escapes: list[dict]
    sweep: list[dict]
    spectra: dict
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config), "theory": self.theory, "solves": self.solves,
            "certificates": self.certificates, "trajectory": self.trajectory, "escapes": self.escapes,
            "sweep": self.sweep, "checks": [c.to_dict() for c in self.checks], "all_passed": self.all_passed,
            "seconds": self.seconds,
        }


def _lambda_max(problem: UFMProblem, x: np.ndarray) -> float:
    p = problem.n_params
    op = LinearOperator((p, p), matvec=problem.hessian_operator(x), dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", tol=1e-6, return_eigenvectors=False)[0])


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300) if b != 0 else abs(a)


def _solve_summary(problem: UFMProblem, x: np.ndarray, th: T.GlobalMinimum | None) -> dict:
    W, H, b = problem.unpack(x)
    f, g = problem.value_and_grad(x)
    out = {
        "value": f, "grad_norm": float(np.linalg.norm(g)), "w_norm_sq": float(np.sum(W * W)),
        "h_norm_sq": float(np.sum(H * H)),
        "balance": float(problem.lambda_w * np.sum(W * W) - problem.lambda_h * np.sum(H * H)),
        "row_norm_sq": np.sum(W * W, axis=1).tolist(), "bias": b.tolist() if problem.has_bias else None,
        "orthogonal_frame_dev": T.orthogonal_frame_deviation(W) if np.any(W) else float("nan"),
        **T.nc_metrics(W, H, problem.labels(), b),
    }
    if th is not None:
        out["value_gap"] = f - th.value
    return out


def _add_solve_checks(checks: list[Check], problem: UFMProblem, s: dict, th: T.GlobalMinimum, tag: str) -> None:
    checks.append(Check(f"{tag} value", s["value"], th.value, TOL_VALUE, abs(s["value"] - th.value) <= TOL_VALUE))
    if th.w_norm_sq > 0:
        for key, label in (("w_norm_sq", "||W||^2"), ("h_norm_sq", "||H||^2")):
            r = _rel(s[key], getattr(th, key))
            checks.append(Check(f"{tag} {label} (rel. tol.)", s[key], getattr(th, key), TOL_NORM_REL,
                                r <= TOL_NORM_REL))
    else:
        tot = s["w_norm_sq"] + s["h_norm_sq"]
        checks.append(Check(f"{tag} collapse ||W||^2+||H||^2", tot, 0.0, 1e-8, tot <= 1e-8))
    checks.append(Check(f"{tag} balance lw||W||^2 - lh||H||^2", s["balance"], 0.0, TOL_BALANCE,
                        abs(s["balance"]) <= TOL_BALANCE))
    if th.geometry == "simplex_etf":
        for key in ("nc1", "nc2", "nc3"):
            checks.append(Check(f"{tag} {key}", s[key], 0.0, TOL_NC, bool(s[key] <= TOL_NC)))
    elif th.geometry == "orthogonal_frame":
        checks.append(Check(f"{tag} nc1", s["nc1"], 0.0, TOL_NC, bool(s["nc1"] <= TOL_NC)))
        checks.append(Check(f"{tag} orthogonal frame WW^T ~ I", s["orthogonal_frame_dev"], 0.0, TOL_NC,
                            bool(s["orthogonal_frame_dev"] <= TOL_NC)))


def default_sweep_dims(K: int) -> tuple[int, ...]:
    return tuple(range(1, K + 3))


def run_ufm(cfg: UFMRunConfig, progress=None) -> UFMRunResult:
    """Run the whole study (single BLAS thread: the matrices are small). ``progress(msg)`` is optional."""
    say = progress or (lambda _m: None)
    with threadpool_limits(limits=1):
        return _run(cfg, say)


def _run(cfg: UFMRunConfig, say) -> UFMRunResult:
    t0 = time.perf_counter()
    problem = cfg.problem()
    if cfg.n_seeds < 1:
        raise UsageError(f"n_seeds must be >= 1, got {cfg.n_seeds}.")
    if cfg.gd_steps < 1 or cfg.escape_steps < 1:
        raise UsageError("gd_steps and escape_steps must be >= 1.")
    checks: list[Check] = []
    ok, why = T.covers(problem)
    th = T.global_minimum(problem) if ok else None

    # 1. global solves from random starts
    say("solving with L-BFGS")
    solves, xs = [], []
    for s in range(cfg.seed, cfg.seed + cfg.n_seeds):
        r = solve_lbfgs(problem, seed=s)
        summ = {"seed": s, **r.to_dict(), **_solve_summary(problem, r.x, th)}
        solves.append(summ)
        xs.append(r.x)
        if th is not None:
            _add_solve_checks(checks, problem, summ, th, f"seed {s}:")
    best = int(np.argmin([s["value"] for s in solves]))
    x_opt = xs[best]

    # 2. certificates
    say("certifying critical points")
    certs: dict = {}
    spectra: dict = {}
    x0 = origin_point(problem)
    c0 = certify(problem, x0, dense_limit=cfg.dense_limit)
    lam_pred = float(T.origin_hessian_spectrum(problem)[0])  # = origin_lambda_min(problem) when K c < 1
    neg_pred = T.origin_negative_count(problem)
    certs["origin"] = {**c0.to_dict(), "lambda_min_theory": lam_pred, "n_negative_theory": neg_pred,
                       "value": problem.value(x0)}
    checks.append(Check("origin lambda_min = formula", c0.lambda_min, lam_pred, 1e-8,
                        abs(c0.lambda_min - lam_pred) <= 1e-8))
    if c0.spectrum is not None:
        spectra["origin"] = c0.spectrum
        checks.append(Check("origin #negative eigenvalues", c0.n_negative, neg_pred, 0, c0.n_negative == neg_pred))
        dev = float(np.max(np.abs(c0.spectrum - T.origin_hessian_spectrum(problem))))
        checks.append(Check("origin full spectrum = closed form (max abs err)", dev, 0.0, 1e-10, dev <= 1e-10))
    if not T.is_collapsed(problem):
        checks.append(Check("origin is a strict saddle", c0.lambda_min, "< 0", None, c0.kind == "strict saddle"))
    else:
        checks.append(Check("origin is a minimum (K c >= 1: collapse)", c0.lambda_min, ">= 0", None,
                            c0.kind == "local minimum (PSD)"))

    d_low = cfg.d_low if cfg.d_low is not None else max(1, (problem.K - 1) // 2)
    if 1 <= d_low < problem.d and not T.is_collapsed(problem):
        xp, _ = padded_optimum(problem, d_low, seed=cfg.seed)
        cp = certify(problem, xp, dense_limit=cfg.dense_limit)
        pred = padded_block_prediction(problem, xp, d_low)
        certs["padded"] = {**cp.to_dict(), "d_low": d_low, "value": problem.value(xp),
                           "lambda_min_predicted": pred["lambda_min"], "n_negative_predicted": pred["n_negative"]}
        if cp.spectrum is not None:
            spectra[f"padded d'={d_low}"] = cp.spectrum
        checks.append(Check(f"padded d'={d_low} critical (grad norm)", cp.grad_norm, 0.0, 1e-8, cp.grad_norm <= 1e-8))
        if pred["lambda_min"] < -T.ZERO_TOL:
            checks.append(Check(f"padded d'={d_low} strict saddle, lambda_min = block prediction", cp.lambda_min,
                                pred["lambda_min"], 1e-7, abs(cp.lambda_min - pred["lambda_min"]) <= 1e-7
                                and cp.kind == "strict saddle"))
        if cp.n_negative is not None:
            checks.append(Check(f"padded d'={d_low} #negative eigenvalues", cp.n_negative, pred["n_negative"], 0,
                                cp.n_negative == pred["n_negative"]))

    copt = certify(problem, x_opt, dense_limit=cfg.dense_limit)
    certs["optimum"] = {**copt.to_dict(), "value": problem.value(x_opt)}
    if copt.spectrum is not None:
        spectra["optimum"] = copt.spectrum
    checks.append(Check("optimum PSD (lambda_min >= -1e-8)", copt.lambda_min, ">= -1e-8", 1e-8,
                        copt.lambda_min >= -1e-8))
    if th is not None and copt.n_zero is not None and th.geometry in ("simplex_etf", "orthogonal_frame", "zero",
                                                                       "etf_plus_mean"):
        z = T.optimum_zero_eigenvalue_count(problem, th.rank)
        certs["optimum"]["n_zero_theory"] = z
        checks.append(Check("optimum #zero eigenvalues = symmetry count", copt.n_zero, z, 0, copt.n_zero == z))

    # 3. GD trajectory from a random start
    say("gradient descent trajectory")
    x_start = problem.random_init(cfg.seed, 0.1)
    lr = cfg.lr
    if lr is None:
        lr = 0.9 / max(_lambda_max(problem, x_start), _lambda_max(problem, x_opt))
    traj = gradient_descent(problem, x_start, lr, cfg.gd_steps, record=record_steps(cfg.gd_steps, 150))
    f_ref = th.value if th is not None else float(solves[best]["value"])
    trajectory = {"lr": lr, "f_ref": f_ref, **traj.to_dict()}

    # 4. escape from the origin
    escapes = []
    if not T.is_collapsed(problem):
        say("escape runs from the origin")
        for eps in cfg.escape_eps:
            e = escape_run(problem, x0, eps=eps, lr=lr, steps=cfg.escape_steps, seed=cfg.seed, f_star=f_ref,
                           with_nc=False)
            rate = -lr * T.origin_lambda_min(problem)
            escapes.append({**{k: v for k, v in e.to_dict().items() if k != "trajectory"},
                            "steps": e.trajectory.steps, "values": e.trajectory.values,
                            "predicted_escape_scale": float(np.log(1.0 / eps) / rate) if rate > 0 else None})
        for e in escapes:
            checks.append(Check(f"GD escapes the origin (eps={e['eps']:g})", e["escape_step"], "finite", None,
                                e["escape_step"] is not None))

    # 5. feature-dimension sweep
    say("feature-dimension sweep")
    sweep = []
    for d in (cfg.sweep_dims or default_sweep_dims(problem.K)):
        pd = problem.with_dim(int(d))
        ok_d, _ = T.covers(pd)
        thd = T.global_minimum(pd) if ok_d else None
        r = solve_lbfgs(pd, seed=cfg.seed)
        s = _solve_summary(pd, r.x, thd)
        sweep.append({"d": int(d), "value": s["value"], "value_theory": thd.value if thd else None,
                      "geometry_theory": thd.geometry if thd else None,
                      **{k: s[k] for k in ("nc1", "nc2", "nc3", "orthogonal_frame_dev", "grad_norm")}})
    if problem.bias != "none" and not T.is_collapsed(problem):
        # theory: a simplex ETF exactly where the closed form says so (d >= K-1 for CE and MSE with bias)
        agree = all((row["nc2"] <= TOL_NC) == (row["geometry_theory"] == "simplex_etf") for row in sweep)
        checks.append(Check("d-sweep: NC2 ~ 0 iff theory predicts an ETF (d >= K-1)", int(agree), 1, None, agree))

    return UFMRunResult(
        cfg, {**th.to_dict(), "covered": True} if th is not None else {"covered": False, "reason": why},
        solves, certs, trajectory, escapes, sweep, spectra, checks, time.perf_counter() - t0,
    )


def write_outputs(result: UFMRunResult, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write ``ufm.json`` (+ PNG plots) into out_dir; returns the written paths."""
    out = ensure_writable_dir(out_dir)
    paths: dict[str, Path] = {}
    payload = result.to_dict()
    payload["spectra"] = {k: np.asarray(v).tolist() for k, v in result.spectra.items()}
    if plots:
        from .plots import write_plots

        paths.update(write_plots(result, out))
        payload["plots"] = {k: p.name for k, p in paths.items()}
    paths["record"] = write_record(out / "ufm.json", RECORD_KIND, payload)
    return paths
