"""Closed-form global minima of the UFM, the origin's Hessian spectrum, symmetry counts and NC metrics.

Notation of :mod:`transferlens.ufm.objectives`; ``c = sqrt(n lw lh)``, ``N = nK``. Derivations are in
``shared/research/nc_landscape_dk.md`` section 2-3 (Zhu et al. 2021, arXiv:2105.02375; Zhou et al. 2022,
arXiv:2203.01238, Lemma B.1; Shen & Gu 2024, arXiv:2407.10702), restated here:

* **Collapse threshold**: every case below has W = H = 0 as its global minimiser iff ``K c >= 1``.
* **CE**, d >= K-1, any bias mode: ``h_{k,i} = sqrt(lw/(n lh)) w^k``, W^T a simplex ETF,
  ``||w^k||^2 = t* = ((K-1)/K) sqrt(n lh/lw) ln(1/c - (K-1))`` and
  ``f* = ln(1 + (K-1) e^{-beta t*}) + K lw t*`` with ``beta = (K/(K-1)) sqrt(lw/(n lh))``;
  ``f* = ln K`` after collapse. No closed form for d < K-1 (softmax codes).
* **MSE**, any d, by "mode" decomposition (Eckart-Young with nuclear-norm shrinkage; balanced factorisation
  ``min lw/2||W||^2 + lh/2||H||^2 s.t. WH = M`` equals ``sqrt(lw lh) ||M||_*``). The target splits into K-1
  centred modes (singular value sqrt(n), data weight 1) and one mean mode with data weight
  ``kappa = 1`` (bias none), ``0`` (bias free), ``lb/(1+lb)`` (bias reg). A kept mode of weight kappa has
  shrinkage ``s = (1 - K c/kappa)_+`` and costs ``kappa/(2K) (1-s)^2 + c s``; a dropped mode costs
  ``kappa/(2K)``; the d modes with the largest gain ``(kappa - Kc)_+^2/(2 K kappa)`` are kept (centred first),
  and the bias term adds ``lb kappa_b/(2K)`` terms as written in :func:`global_minimum`. This reproduces
  ``f* = (K-1) c (1 - Kc/2)`` (bias free, d >= K-1), the orthogonal frame ``W Hbar = (1-Kc)_+ I`` without
  bias (d >= K) and the d < K-1 values of the spec table. [D] derived here, checked by the tests.
* ``||W||_F^2 = sqrt(lh/lw) ||WH||_* = sqrt(n lh/lw) sum_modes s`` and ``lw ||W||^2 = lh ||H||^2``.

NC metrics follow the spec section 5 (as in tding1/Neural-Collapse ``validate_NC.py``; written anew, CPU,
no hard-coded class counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .objectives import UFMProblem

ZERO_TOL = 1e-6


class TheoryNotCovered(InputError):
    """The requested closed form is not known for this case (e.g. CE with d < K-1)."""


# ---------------------------------------------------------------------------------------------- closed forms
def collapse_threshold_c(K: int) -> float:
    """Critical ``c = sqrt(n lw lh)``: the solution is W = H = 0 iff ``c >= 1/K``."""
    return 1.0 / K


def is_collapsed(problem: UFMProblem) -> bool:
    return problem.K * problem.c >= 1.0


@dataclass(frozen=True)
class GlobalMinimum:
    """Closed-form description of the global minimiser(s)."""

    value: float
    w_norm_sq: float  # ||W||_F^2
    h_norm_sq: float  # ||H||_F^2
    row_norm_sq: float | None  # ||w^k||^2 when all rows have equal norm, else None
    rank: int  # rank of W (and H)
    geometry: str  # "simplex_etf" | "orthogonal_frame" | "etf_plus_mean" | "zero" | "low_rank"
    bias: np.ndarray | None  # predicted b; None when no bias or when b is only fixed up to b + t 1
    shrinkage: dict = field(default_factory=dict)  # per-mode s for MSE
    notes: str = ""

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "w_norm_sq": self.w_norm_sq,
            "h_norm_sq": self.h_norm_sq,
            "row_norm_sq": self.row_norm_sq,
            "rank": self.rank,
            "geometry": self.geometry,
            "bias": None if self.bias is None else self.bias.tolist(),
            "shrinkage": self.shrinkage,
            "notes": self.notes,
        }


def covers(problem: UFMProblem) -> tuple[bool, str]:
    """Whether :func:`global_minimum` has a closed form for this problem, and why not."""
    if problem.loss == "ce" and problem.d < problem.K - 1 and not is_collapsed(problem):
        return False, (
            f"no closed form for CE with d={problem.d} < K-1={problem.K - 1} (no simplex ETF fits; "
            "the optimum is a 'softmax code', outside the theory)"
        )
    return True, ""


def global_minimum(problem: UFMProblem) -> GlobalMinimum:
    """Closed-form global minimum value, norms and geometry; raises TheoryNotCovered when unknown."""
    ok, why = covers(problem)
    if not ok:
        raise TheoryNotCovered(why)
    if problem.loss == "ce":
        return _ce_minimum(problem)
    return _mse_minimum(problem)


def _ce_minimum(p: UFMProblem) -> GlobalMinimum:
    K, n, lw, lh, c = p.K, p.n, p.lambda_w, p.lambda_h, p.c
    # b = beta 1 with beta = 0 when regularised; when free, any constant vector (shift invariance).
    bias = np.zeros(K) if p.bias == "reg" else None
    if K * c >= 1:
        return GlobalMinimum(float(np.log(K)), 0.0, 0.0, 0.0, 0, "zero", bias, notes="K c >= 1: W = H = 0")
    t = (K - 1) / K * np.sqrt(n * lh / lw) * np.log(1.0 / c - (K - 1))
    beta = K / (K - 1) * np.sqrt(lw / (n * lh))
    f = np.log1p((K - 1) * np.exp(-beta * t)) + K * lw * t
    wn = K * t
    return GlobalMinimum(float(f), float(wn), float(lw / lh * wn), float(t), K - 1, "simplex_etf", bias)


def _mse_kappa(p: UFMProblem) -> float:
    return {"none": 1.0, "free": 0.0, "reg": p.lambda_b / (1.0 + p.lambda_b)}[p.bias]


def _mse_minimum(p: UFMProblem) -> GlobalMinimum:
    K, n, lw, lh, c, d = p.K, p.n, p.lambda_w, p.lambda_h, p.c, p.d
    kappa = _mse_kappa(p)

    def mode(kap: float) -> tuple[float, float, float]:
        """(shrinkage s, cost if kept, cost if dropped) of one mode with data weight kap."""
        s = max(0.0, 1.0 - K * c / kap) if kap > 0 else 0.0
        return s, kap / (2 * K) * (1 - s) ** 2 + c * s, kap / (2 * K)

    s_c, kept_c, drop_c = mode(1.0)
    s_m, kept_m, drop_m = mode(kappa)
    n_centred = min(d, K - 1)
    keep_mean = d >= K and s_m > 0  # gain of the mean mode <= gain of a centred mode
    value = n_centred * kept_c + (K - 1 - n_centred) * drop_c + (kept_m if keep_mean else drop_m)
    # (reg: min_b 1/2||m + b - ybar||^2 + lb/2||b||^2 = kappa/2 ||ybar - m||^2 is the mean-mode cost above)
    s_mean = s_m if keep_mean else 0.0
    sum_s = n_centred * s_c + s_mean
    wn = float(np.sqrt(n * lh / lw) * sum_s)
    rank = (n_centred if s_c > 0 else 0) + (1 if s_mean > 0 else 0)
    # b: bias none -> None; free -> ybar - m = (1 - s_mean) ybar; reg -> (1 - s_mean) ybar / (1 + lb)
    if p.bias == "none":
        bias = None
    else:
        bias = np.full(K, (1.0 - s_mean) / K / (1.0 + p.lambda_b))
    if rank == 0:
        geometry = "zero"
    elif p.bias == "none" and d < K:
        geometry = "low_rank"  # K equal target modes, any d of them: the minimiser is not unique
    elif n_centred == K - 1 and s_mean == 0:
        geometry = "simplex_etf"
    elif n_centred == K - 1 and p.bias == "none":
        geometry = "orthogonal_frame"
    elif n_centred == K - 1:
        geometry = "etf_plus_mean"
    else:
        geometry = "low_rank"
    row = wn / K if geometry in ("simplex_etf", "orthogonal_frame", "zero") else None
    if geometry == "orthogonal_frame" and abs(s_mean - s_c) > 1e-15:
        row = None
    notes = ""
    if geometry == "low_rank":
        notes = "fewer feature dims than target modes: the value is exact, the minimiser is not unique"
    return GlobalMinimum(
        float(value), wn, float(lw / lh * wn), row, rank, geometry, bias,
        shrinkage={"centred": s_c, "n_centred_kept": n_centred, "mean": s_mean}, notes=notes,
    )


def optimum_zero_eigenvalue_count(problem: UFMProblem, rank: int | None = None) -> int:
    """Zero Hessian eigenvalues at a global minimiser forced by the symmetries.

    O(d) acts by ``W -> W Q, H -> Q^T H``; its orbit through a point with rank(W) = r has dimension
    ``d(d-1)/2 - (d-r)(d-r-1)/2``. CE with a free bias adds the shift ``b -> b + t 1``.
    """
    if rank is None:
        rank = global_minimum(problem).rank
    d = problem.d
    count = d * (d - 1) // 2 - (d - rank) * (d - rank - 1) // 2
    if problem.loss == "ce" and problem.bias == "free":
        count += 1
    return count


# ---------------------------------------------------------------------------------------------- origin
def origin_bias(problem: UFMProblem) -> np.ndarray | None:
    """b0 making (W=0, H=0, b0) critical: 0 for CE, ybar/(1+lb) = 1/(K(1+lb)) 1 for MSE; None without bias."""
    if not problem.has_bias:
        return None
    if problem.loss == "ce":
        return np.zeros(problem.K)
    return np.full(problem.K, 1.0 / (problem.K * (1.0 + problem.lambda_b)))


def origin_residual_singular_values(problem: UFMProblem) -> np.ndarray:
    """Singular values of G at the origin: K-1 of 1/(K sqrt n) (= -Ytilde/N), plus the mean mode
    kappa/(K sqrt n) for MSE (kappa = 1 without bias, lb/(1+lb) with a regularised bias, 0 if free)."""
    K, n = problem.K, problem.n
    sv = [1.0 / (K * np.sqrt(n))] * (K - 1)
    if problem.loss == "mse":
        sv.append(_mse_kappa(problem) / (K * np.sqrt(n)))
    return np.array(sv)


def factor_block_eigenvalues(sv: np.ndarray, lw: float, lh: float, K: int, N: int, copies: int) -> np.ndarray:
    """Eigenvalues of ``copies`` copies of [[lw I_K, G], [G^T, lh I_N]] given the singular values of G.

    This is the Hessian block of (one column of W, one row of H) wherever that feature axis is unused
    (W[:, j] = 0, H[j, :] = 0): its second-order term is ``lw|u|^2 + lh|v|^2 + 2 u^T G v``.
    """
    sv = np.asarray([s for s in sv if s > 0], dtype=np.float64)
    r = sv.size
    disc = np.sqrt((lw - lh) ** 2 + 4 * sv**2)
    one = np.concatenate([(lw + lh - disc) / 2, (lw + lh + disc) / 2, np.full(K - r, lw), np.full(N - r, lh)])
    return np.sort(np.tile(one, copies))


def origin_hessian_spectrum(problem: UFMProblem) -> np.ndarray:
    """Full Hessian spectrum at the origin critical point (closed form, sorted ascending)."""
    p, K = problem, problem.K
    parts = [factor_block_eigenvalues(origin_residual_singular_values(p), p.lambda_w, p.lambda_h, K, p.N, p.d)]
    if p.has_bias:
        if p.loss == "ce":  # (1/K)(I - 11^T/K) + lb I
            parts.append(np.concatenate([np.full(K - 1, 1.0 / K + p.lambda_b), [p.lambda_b]]))
        else:
            parts.append(np.full(K, 1.0 + p.lambda_b))
    return np.sort(np.concatenate(parts))


def origin_lambda_min(problem: UFMProblem) -> float:
    """``[(lw + lh) - sqrt((lw - lh)^2 + 4/(K^2 n))]/2``; negative iff K c < 1."""
    lw, lh, K, n = problem.lambda_w, problem.lambda_h, problem.K, problem.n
    return float(((lw + lh) - np.sqrt((lw - lh) ** 2 + 4.0 / (K * K * n))) / 2)


def origin_negative_count(problem: UFMProblem) -> int:
    """d times the number of residual singular values exceeding sqrt(lw lh)."""
    thr = np.sqrt(problem.lambda_w * problem.lambda_h)
    return int(problem.d * np.sum(origin_residual_singular_values(problem) > thr))


# ---------------------------------------------------------------------------------------------- NC metrics
def etf_matrix(K: int) -> np.ndarray:
    """Normalised simplex-ETF Gram target ``(I - 11^T/K)/sqrt(K-1)`` (unit Frobenius norm)."""
    return (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)


def class_means(H: np.ndarray, labels: np.ndarray, K: int) -> np.ndarray:
    """Class means as columns (d x K)."""
    return np.stack([H[:, labels == k].mean(axis=1) for k in range(K)], axis=1)


def _normalised_dist(A: np.ndarray, target: np.ndarray) -> float:
    nrm = np.linalg.norm(A)
    if not np.isfinite(nrm) or nrm < 1e-300:
        return float("nan")
    return float(np.linalg.norm(A / nrm - target))


def nc_metrics(W: np.ndarray, H: np.ndarray, labels: np.ndarray, b: np.ndarray | None = None) -> dict:
    """NC1-NC4 (spec section 5) for weights W (K x d), features H (d x N) with labels.

    NC1 = tr(S_W S_B^+)/K; NC2 = ||WW^T/||WW^T|| - ETF||; NC3 = ||W Hbar/||W Hbar|| - ETF|| with Hbar the
    centred class means; also the self-duality ``||W^T/||W|| - Hbar/||Hbar||||`` and NC4 = ||W mu_G + b||.
    Metrics are NaN where undefined (e.g. at W = H = 0).
    """
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    K = W.shape[0]
    mu = class_means(H, labels, K)
    mu_g = H.mean(axis=1)
    Hbar = mu - mu_g[:, None]
    Hc = H - mu[:, labels]
    S_w = Hc @ Hc.T / H.shape[1]
    S_b = Hbar @ Hbar.T / K
    scale = np.linalg.norm(S_b, 2) if S_b.size else 0.0
    if scale < 1e-300:
        nc1 = float("nan")
    else:
        nc1 = float(np.trace(S_w @ np.linalg.pinv(S_b, rcond=1e-10, hermitian=True)) / K)
    target = etf_matrix(K)
    nc2 = _normalised_dist(W @ W.T, target)
    nc3 = _normalised_dist(W @ Hbar, target)
    nw, nh = np.linalg.norm(W), np.linalg.norm(Hbar)
    dual = float(np.linalg.norm(W.T / nw - Hbar / nh)) if nw > 1e-300 and nh > 1e-300 else float("nan")
    nc4 = float(np.linalg.norm(W @ mu_g + (0.0 if b is None else np.asarray(b))))
    return {"nc1": nc1, "nc2": nc2, "nc3": nc3, "nc3_duality": dual, "nc4": nc4}


def orthogonal_frame_deviation(W: np.ndarray) -> float:
    """``||WW^T/||WW^T|| - I/sqrt(K)||_F``: 0 iff the rows of W are orthogonal with equal norms."""
    K = W.shape[0]
    return _normalised_dist(W @ W.T, np.eye(K) / np.sqrt(K))


def simplex_etf_check(M: np.ndarray, atol: float = 1e-8) -> dict:
    """Check that the rows of M (K x d) form a simplex ETF: equal norms, pairwise cosine -1/(K-1)."""
    M = np.asarray(M, dtype=np.float64)
    K = M.shape[0]
    norms = np.linalg.norm(M, axis=1)
    if norms.min() <= 0:
        return {"equal_norms": False, "max_cosine_error": float("inf"), "is_etf": False, "centred": False}
    cos = (M @ M.T) / np.outer(norms, norms)
    off = cos[~np.eye(K, dtype=bool)]
    cos_err = float(np.max(np.abs(off + 1.0 / (K - 1))))
    eq = float(np.ptp(norms) / norms.mean())
    centred = float(np.linalg.norm(M.sum(axis=0)) / norms.mean())
    return {
        "norm_spread": eq,
        "max_cosine_error": cos_err,
        "centred_error": centred,
        "is_etf": bool(eq < atol and cos_err < atol),
    }
