"""Unconstrained feature model (UFM) objectives with analytic gradients and Hessian-vector products.

The UFM (Mixon et al. 2020; Zhu et al., NeurIPS 2021, arXiv:2105.02375; Zhou et al., ICML 2022,
arXiv:2203.01238; Shen & Gu 2024, arXiv:2407.10702 for d = K) treats the last-layer features as free
variables::

    f(W, H, b) = (1/N) sum_{k,i} L(W h_{k,i} + b, y_k) + lw/2 ||W||_F^2 + lh/2 ||H||_F^2 + lb/2 ||b||^2

    CE : L(z, y_k) = logsumexp(z) - z_k          MSE: L(z, y_k) = 1/2 ||z - y_k||^2

with ``W`` (K x d), ``H`` (d x N), ``b`` (K), ``N = nK`` samples ordered class by class (balanced classes).
With ``Z = WH + b 1^T`` and ``G = dL/dZ`` ((softmax(Z) - Y)/N for CE, (Z - Y)/N for MSE)::

    grad_W = G H^T + lw W,   grad_H = W^T G + lh H,   grad_b = G 1 + lb b

and for a direction ``(dW, dH, db)``, with ``dZ = dW H + W dH + db 1^T`` and ``dG`` the derivative of G along
dZ (``(P*dZ - P*colsum(P*dZ))/N`` for CE, ``dZ/N`` for MSE), the Hessian-vector product is::

    H_W = dG H^T + G dH^T + lw dW,   H_H = dW^T G + W^T dG + lh dH,   H_b = dG 1 + lb db

Bias modes: ``none`` (b = 0, not a variable), ``free`` (b a variable, lb = 0), ``reg`` (b a variable, lb > 0).
Parameters are packed as ``x = [vec(W), vec(H), b]`` (row-major), float64 throughout.

Written from the formulas above (the official repositories tding1/Neural-Collapse and
jinxinzhou/neural-collapse-MSE train networks and have no UFM solver to copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UsageError

Loss = Literal["ce", "mse"]
Bias = Literal["none", "free", "reg"]

LOSSES = ("ce", "mse")
BIAS_MODES = ("none", "free", "reg")


@dataclass(frozen=True)
class UFMProblem:
    """One UFM instance: loss, sizes (K classes, d feature dims, n samples per class) and regularisation."""

    loss: Loss
    K: int
    d: int
    n: int
    lambda_w: float
    lambda_h: float
    lambda_b: float = 0.0
    bias: Bias = "free"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UsageError(f"loss must be one of {LOSSES}, got {self.loss!r}.")
        if self.bias not in BIAS_MODES:
            raise UsageError(f"bias must be one of {BIAS_MODES}, got {self.bias!r}.")
        for name, val, lo in (("K", self.K, 2), ("d", self.d, 1), ("n", self.n, 1)):
            if not isinstance(val, (int, np.integer)) or val < lo:
                raise UsageError(f"{name} must be an integer >= {lo}, got {val!r}.")
        for name, val in (("lambda_w", self.lambda_w), ("lambda_h", self.lambda_h)):
            if not (np.isfinite(val) and val > 0):
                raise UsageError(f"{name} must be a finite number > 0 (weight decay), got {val!r}.")
        if not (np.isfinite(self.lambda_b) and self.lambda_b >= 0):
            raise UsageError(f"lambda_b must be a finite number >= 0, got {self.lambda_b!r}.")
        if self.bias == "reg" and self.lambda_b <= 0:
            raise UsageError("bias='reg' needs lambda_b > 0; use bias='free' for an unregularised bias.")
        if self.bias in ("none", "free") and self.lambda_b != 0:
            raise UsageError(
                f"lambda_b={self.lambda_b} is only used with bias='reg'; set bias='reg' or lambda_b=0."
            )

    # ----------------------------------------------------------------- sizes and packing
    @property
    def N(self) -> int:
        return self.n * self.K

    @property
    def has_bias(self) -> bool:
        return self.bias != "none"

    @property
    def n_params(self) -> int:
        return self.K * self.d + self.d * self.N + (self.K if self.has_bias else 0)

    @property
    def c(self) -> float:
        """``c = sqrt(n lw lh)``; the non-trivial minimiser exists iff ``K c < 1``."""
        return float(np.sqrt(self.n * self.lambda_w * self.lambda_h))

    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.K), self.n)

    def targets(self) -> np.ndarray:
        """One-hot targets Y (K x N), class-major order."""
        return np.repeat(np.eye(self.K), self.n, axis=1)

    def pack(self, W: np.ndarray, H: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        W = np.asarray(W, dtype=np.float64)
        H = np.asarray(H, dtype=np.float64)
        if W.shape != (self.K, self.d) or H.shape != (self.d, self.N):
            raise UsageError(
                f"expected W {(self.K, self.d)} and H {(self.d, self.N)}, got {W.shape} and {H.shape}."
            )
        parts = [W.ravel(), H.ravel()]
        if self.has_bias:
            parts.append(np.zeros(self.K) if b is None else np.asarray(b, dtype=np.float64).reshape(self.K))
        return np.concatenate(parts)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return views (W, H, b); b is a zero vector when the problem has no bias."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_params,):
            raise UsageError(f"parameter vector must have shape ({self.n_params},), got {x.shape}.")
        kd, dn = self.K * self.d, self.d * self.N
        W = x[:kd].reshape(self.K, self.d)
        H = x[kd : kd + dn].reshape(self.d, self.N)
        b = x[kd + dn :] if self.has_bias else np.zeros(self.K)
        return W, H, b

    def random_init(self, seed: int = 0, scale: float = 0.1) -> np.ndarray:
        """Gaussian N(0, scale^2) start (b = 0)."""
        rng = np.random.default_rng(seed)
        x = scale * rng.standard_normal(self.n_params)
        if self.has_bias:
            x[-self.K :] = 0.0
        return x

    # ----------------------------------------------------------------- objective
    def logits(self, x: np.ndarray) -> np.ndarray:
        W, H, b = self.unpack(x)
        return W @ H + b[:, None]

    def _data(self, Z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Data term, its gradient G w.r.t. Z, and softmax P (CE) for the HVP."""
        Y = self.targets()
        N = self.N
        if self.loss == "ce":  # stable log-sum-exp / softmax over classes (plain numpy: called very often)
            m = Z.max(axis=0)
            E = np.exp(Z - m)
            s = E.sum(axis=0)
            lse = m + np.log(s)
            val = float(np.sum(lse - np.sum(Z * Y, axis=0)) / N)
            P = E / s
            return val, (P - Y) / N, P
        R = Z - Y
        return float(0.5 * np.sum(R * R) / N), R / N, None

    def value(self, x: np.ndarray) -> float:
        return self.value_and_grad(x)[0]

    def residual(self, x: np.ndarray) -> np.ndarray:
        """G = d(data term)/dZ at x (K x N)."""
        return self._data(self.logits(x))[1]

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        W, H, b = self.unpack(x)
        data, G, _ = self._data(W @ H + b[:, None])
        lw, lh, lb = self.lambda_w, self.lambda_h, self.lambda_b
        f = data + 0.5 * lw * np.sum(W * W) + 0.5 * lh * np.sum(H * H) + 0.5 * lb * np.sum(b * b)
        parts = [(G @ H.T + lw * W).ravel(), (W.T @ G + lh * H).ravel()]
        if self.has_bias:
            parts.append(G.sum(axis=1) + lb * b)
        return float(f), np.concatenate(parts)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def hvp_batch(self, x: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Hessian times each column of V (p x m), analytic; returns p x m."""
        V = np.asarray(V, dtype=np.float64)
        if V.ndim == 1:
            return self.hvp_batch(x, V[:, None])[:, 0]
        return self.hessian_operator(x)(V)

    def hessian_operator(self, x: np.ndarray):
        """Return ``V -> Hess f(x) @ V`` (V of shape (p,) or (p, m)) with the residual at x computed once."""
        K, d, N = self.K, self.d, self.N
        W, H, b = self.unpack(np.array(x, dtype=np.float64))
        _, G, P = self._data(W @ H + b[:, None])
        kd, dn = K * d, d * N
        lw, lh, lb = self.lambda_w, self.lambda_h, self.lambda_b

        def apply(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, dtype=np.float64)
            single = V.ndim == 1
            if single:
                V = V[:, None]
            p, m = V.shape
            if p != self.n_params:
                raise UsageError(f"direction(s) must have {self.n_params} rows, got {p}.")
            dW = V[:kd].T.reshape(m, K, d)
            dH = V[kd : kd + dn].T.reshape(m, d, N)
            dZ = dW @ H + W @ dH  # (m, K, N)
            if self.has_bias:
                db = V[kd + dn :].T  # (m, K)
                dZ = dZ + db[:, :, None]
            if self.loss == "ce":
                PdZ = P * dZ
                dG = (PdZ - P * PdZ.sum(axis=1, keepdims=True)) / N
            else:
                dG = dZ / N
            hW = dG @ H.T + G @ dH.transpose(0, 2, 1) + lw * dW
            hH = dW.transpose(0, 2, 1) @ G + W.T @ dG + lh * dH
            out = [hW.reshape(m, kd), hH.reshape(m, dn)]
            if self.has_bias:
                out.append(dG.sum(axis=2) + lb * db)
            res = np.concatenate(out, axis=1).T
            return res[:, 0] if single else res

        return apply

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.hvp_batch(x, np.asarray(v, dtype=np.float64)[:, None])[:, 0]

    def hessian(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Dense Hessian (p x p) from batched HVPs with the identity, symmetrised."""
        p = self.n_params
        op = self.hessian_operator(x)
        Hs = np.empty((p, p))
        for s in range(0, p, chunk):
            e = min(p, s + chunk)
            E = np.zeros((p, e - s))
            E[np.arange(s, e), np.arange(e - s)] = 1.0
            Hs[:, s:e] = op(E)
        return 0.5 * (Hs + Hs.T)

    def with_dim(self, d: int) -> "UFMProblem":
        """Same problem with feature dimension d."""
        return UFMProblem(self.loss, self.K, d, self.n, self.lambda_w, self.lambda_h, self.lambda_b, self.bias)
