"""The in-memory view of a data source: what every source returns and every consumer reads.

A :class:`Dataset` is a list of samples (images, texts or precomputed feature vectors) with integer labels
``0..K-1`` and class names. Images are kept in their native form (uint8, any size, gray or RGB) and are
delivered at the resolution and channel count a model asks for with :meth:`Dataset.images`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError, UsageError

Kind = Literal["image", "text", "features"]


@dataclass(frozen=True)
class ImageSpec:
    """How a model wants its images: square ``size`` pixels, ``channels`` (1 or 3), values in [0, 1]."""

    size: int
    channels: int = 3

    def __post_init__(self) -> None:
        if self.size < 1 or self.channels not in (1, 3):
            raise UsageError(f"invalid image spec size={self.size} channels={self.channels}; size >= 1, channels 1 or 3.")


# A shift maps a float image batch (B, C, H, W) in [0, 1] and the samples' ids to a shifted batch.
ShiftFn = Callable[[torch.Tensor, np.ndarray], torch.Tensor]


@dataclass
class Dataset:
    """Samples with labels ``0..K-1``.

    ``loader(ids)`` returns the raw items of the given sample ids: a list of uint8 arrays (H, W) or
    (H, W, 3) for images, a list of str for texts, a float array (n, D) for features. ``ids`` are the
    sample ids within the source (stable under subsetting), used to seed per-sample randomness.
    """

    uri: str
    kind: Kind
    ids: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    loader: Callable[[np.ndarray], object]
    shift: ShiftFn | None = None
    fingerprint: str = ""  # identity of the underlying files (sizes, mtimes), for cache keys
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    # ---------------------------------------------------------------- selection
    def subset(self, positions: np.ndarray) -> "Dataset":
        positions = np.asarray(positions, dtype=np.int64)
        return replace(self, ids=self.ids[positions], labels=self.labels[positions])

    def relabel(self, keep_classes: Sequence[int]) -> "Dataset":
        """Keep only ``keep_classes`` (old indices, in the given order) and renumber them 0..k-1."""
        keep = list(keep_classes)
        mapping = np.full(self.n_classes, -1, dtype=np.int64)
        mapping[keep] = np.arange(len(keep))
        mask = mapping[self.labels] >= 0
        return replace(
            self,
            ids=self.ids[mask],
            labels=mapping[self.labels[mask]],
            class_names=[self.class_names[c] for c in keep],
        )

    # ---------------------------------------------------------------- delivery
    def raw(self, positions: np.ndarray) -> object:
        return self.loader(self.ids[np.asarray(positions, dtype=np.int64)])

    def texts(self, positions: np.ndarray) -> list[str]:
        if self.kind != "text":
            raise UsageError(f"{self.uri} holds {self.kind}, not texts; use a text model with text data.")
        return list(self.raw(positions))  # type: ignore[arg-type]

    def feature_matrix(self) -> np.ndarray:
        if self.kind != "features":
            raise UsageError(f"{self.uri} holds {self.kind}, not precomputed features.")
        return np.asarray(self.raw(np.arange(len(self))), dtype=np.float32)

    def images(self, positions: np.ndarray, spec: ImageSpec) -> torch.Tensor:
        """Images at ``spec`` as a float tensor (B, C, size, size) in [0, 1], shift applied."""
        if self.kind != "image":
            raise UsageError(f"{self.uri} holds {self.kind}, not images; use an image model with image data.")
        positions = np.asarray(positions, dtype=np.int64)
        items = self.raw(positions)
        batch = torch.from_numpy(np.stack([to_spec(img, spec) for img in items]))  # type: ignore[union-attr]
        if self.shift is not None:
            batch = self.shift(batch, self.ids[positions]).clamp_(0.0, 1.0)
        return batch


def to_spec(img: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Resize a uint8 image (bilinear, antialiased) and convert channels; return float32 (C, H, W) in [0, 1]."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    mode = "L" if img.ndim == 2 else "RGB"
    pil = Image.fromarray(img, mode=mode)
    if spec.channels == 3 and mode == "L":
        pil = pil.convert("RGB")
    elif spec.channels == 1 and mode == "RGB":
        pil = pil.convert("L")
    if pil.size != (spec.size, spec.size):
        pil = pil.resize((spec.size, spec.size), Image.Resampling.BILINEAR, reducing_gap=None)
    arr = np.asarray(pil, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


# ---------------------------------------------------------------------------- selection helpers
def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split; returns (train positions, test positions), each sorted."""
    if not 0.0 < test_fraction < 1.0:
        raise UsageError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    rng = np.random.default_rng([seed, 7919])
    train, test = [], []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        pos = pos[rng.permutation(pos.size)]
        n_test = int(round(test_fraction * pos.size))
        if pos.size >= 2:
            n_test = min(max(n_test, 1), pos.size - 1)
        test.append(pos[:n_test])
        train.append(pos[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def balanced_subsample(labels: np.ndarray, class_names: list[str], n_per_class: int, seed: int, uri: str) -> np.ndarray:
    """Positions of ``n_per_class`` samples of every class, chosen by ``seed``; sorted by class then draw."""
    rng = np.random.default_rng([seed, 104729])
    counts = np.bincount(labels, minlength=len(class_names))
    short = [(class_names[c], int(counts[c])) for c in range(len(class_names)) if counts[c] < n_per_class]
    if short:
        listed = ", ".join(f"{name!r} has {n}" for name, n in short[:5])
        more = f" (and {len(short) - 5} more)" if len(short) > 5 else ""
        raise DataError(
            f"{uri}: n_per_class={n_per_class} but {listed}{more}; lower n_per_class or select classes "
            "with enough samples (classes=...)."
        )
    picks = []
    for c in range(len(class_names)):
        pos = np.flatnonzero(labels == c)
        picks.append(np.sort(pos[rng.choice(pos.size, size=n_per_class, replace=False)]))
    return np.concatenate(picks)


def parse_class_selection(spec: str, class_names: list[str], uri: str) -> list[int]:
    """``classes=`` values: names or indices, comma separated, with ranges ``a-b`` of indices."""
    chosen: list[int] = []
    lookup = {name: i for i, name in enumerate(class_names)}
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in lookup:
            chosen.append(lookup[token])
            continue
        lo, sep, hi = token.partition("-")
        try:
            idx = list(range(int(lo), int(hi) + 1)) if sep and lo and hi else [int(token)]
        except ValueError:
            raise UsageError(
                f"{uri}: unknown class {token!r}; classes are {', '.join(class_names[:20])}"
                + (" ..." if len(class_names) > 20 else "")
            ) from None
        for i in idx:
            if not 0 <= i < len(class_names):
                raise UsageError(f"{uri}: class index {i} out of range 0..{len(class_names) - 1}.")
        chosen.extend(idx)
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"{uri}: classes={spec!r} names a class twice.")
    if not chosen:
        raise UsageError(f"{uri}: classes={spec!r} selects no class.")
    return chosen


def fingerprint_files(paths: Sequence[str]) -> str:
    """A cheap identity of files: names, sizes and modification times."""
    h = hashlib.sha256()
    import os

    for p in sorted(paths):
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{int(st.st_mtime)}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:16]
