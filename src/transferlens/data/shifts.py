"""Parameterised image corruptions for out-of-distribution tests, severity 1-5.

In the style of ImageNet-C (Hendrycks & Dietterich, ICLR 2019) and MNIST-C (Mu & Gilmer, 2019), applied
to images at the resolution the model receives, values in [0, 1]. Each corruption draws its randomness
from ``(sample id, corruption)`` only and reuses it across severities (the same noise pattern, patch
centre, rotation sign), so a higher severity moves every image further from the clean one.

URI form: ``shift:NAME:SEVERITY:INNER_URI``, e.g. ``shift:gaussian_noise:3:builtin:digits?n_per_class=50``.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UsageError


def _rng(sample_id: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(sample_id), zlib.crc32(name.encode())])


def gaussian_noise(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    noise = torch.stack([torch.from_numpy(_rng(i, "gaussian_noise").standard_normal(x.shape[1:]).astype(np.float32)) for i in ids])
    return x + level * noise


def blur(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    sigma = level * x.shape[-1] / 32.0
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(pad, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def contrast(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * level + mean


def jpeg(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    out = []
    for img in x:
        arr = (img.permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=int(level))
        dec = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(dec[None] if dec.ndim == 2 else dec.transpose(2, 0, 1).copy()))
    return torch.stack(out)


def pixelate(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    size = x.shape[-1]
    small = max(1, int(round(size * level)))
    return F.interpolate(F.adaptive_avg_pool2d(x, small), size=(size, size), mode="nearest")


def low_resolution(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    size = x.shape[-1]
    small = max(1, int(round(size * level)))
    down = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(down, size=(size, size), mode="bilinear", align_corners=False)


def rotation(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    out = []
    for img, i in zip(x, ids):
        sign = 1.0 if _rng(i, "rotation").random() < 0.5 else -1.0
        theta = np.deg2rad(sign * level)
        mat = torch.tensor([[np.cos(theta), -np.sin(theta), 0.0], [np.sin(theta), np.cos(theta), 0.0]], dtype=torch.float32)
        grid = F.affine_grid(mat[None], list(img[None].shape), align_corners=False)
        out.append(F.grid_sample(img[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0])
    return torch.stack(out)


def inversion(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    return (1.0 - level) * x + level * (1.0 - x)


def occlusion(x: torch.Tensor, ids: np.ndarray, level: float) -> torch.Tensor:
    out = x.clone()
    size = x.shape[-1]
    side = max(1, int(round(level * size)))
    for b, i in enumerate(ids):
        cy, cx = _rng(i, "occlusion").uniform(0.25, 0.75, size=2) * size
        top = int(np.clip(round(cy - side / 2), 0, size - side))
        left = int(np.clip(round(cx - side / 2), 0, size - side))
        out[b, :, top : top + side, left : left + side] = 0.5
    return out


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: Callable[[torch.Tensor, np.ndarray, float], torch.Tensor]
    levels: tuple[float, float, float, float, float]
    description: str


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("gaussian_noise", gaussian_noise, (0.04, 0.08, 0.12, 0.18, 0.26), "additive N(0, s^2) pixel noise"),
        Corruption("blur", blur, (0.5, 0.75, 1.0, 1.5, 2.0), "Gaussian blur, sigma in pixels at 32x32 (scaled with size)"),
        Corruption("contrast", contrast, (0.6, 0.45, 0.3, 0.2, 0.1), "contrast scaled by c around the image mean"),
        Corruption("jpeg", jpeg, (50, 30, 18, 10, 5), "JPEG compression at quality q"),
        Corruption("pixelate", pixelate, (0.75, 0.6, 0.45, 0.35, 0.25), "box-downsample by f, nearest upsample"),
        Corruption("low_resolution", low_resolution, (0.75, 0.5, 0.375, 0.25, 0.1875), "bilinear downsample by f and back"),
        Corruption("rotation", rotation, (10, 20, 30, 45, 60), "rotation by +-a degrees (sign per sample)"),
        Corruption("inversion", inversion, (0.6, 0.7, 0.8, 0.9, 1.0), "blend a of the inverted image (1 = full inversion)"),
        Corruption("occlusion", occlusion, (0.2, 0.3, 0.4, 0.5, 0.6), "grey square of side f*size at a random place"),
    )
}


def make_shift(name: str, severity: int) -> Callable[[torch.Tensor, np.ndarray], torch.Tensor]:
    """The corruption ``name`` at ``severity`` (1-5) as a function of (batch, sample ids)."""
    if name not in CORRUPTIONS:
        raise UsageError(f"unknown shift {name!r}; available: {', '.join(CORRUPTIONS)}.")
    if not 1 <= severity <= 5:
        raise UsageError(f"shift severity must be 1-5, got {severity}.")
    corruption = CORRUPTIONS[name]
    level = corruption.levels[severity - 1]

    def apply(batch: torch.Tensor, ids: np.ndarray) -> torch.Tensor:
        return corruption.fn(batch, ids, level)

    return apply
