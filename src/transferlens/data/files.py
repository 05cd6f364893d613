"""User data sources: ``imagefolder:PATH`` (one folder per class), ``csv:PATH`` (text and label columns),
``npz:PATH`` (precomputed ``features`` and ``labels``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError, UsageError
from ..uri import URI
from ..validation import as_float_matrix
from .base import Dataset, fingerprint_files

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def _existing(path: str, uri: URI, is_dir: bool) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{uri.scheme}:{path}: no such {'folder' if is_dir else 'file'}.")
    if is_dir != p.is_dir():
        raise DataError(f"{uri.scheme}:{path}: expected a {'folder' if is_dir else 'file'}.")
    return p


def build_imagefolder(uri: URI) -> Dataset:
    root = _existing(uri.path, uri, is_dir=True)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[str] = []
    labels: list[int] = []
    for c, name in enumerate(classes):
        found = sorted(
            str(f) for f in (root / name).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        files += found
        labels += [c] * len(found)
    if len(classes) < 1 or not files:
        raise DataError(
            f"imagefolder:{uri.path}: no images found; expected one sub-folder per class holding "
            f"image files ({', '.join(sorted(IMAGE_SUFFIXES))})."
        )
    used = sorted(set(labels))
    if len(used) < len(classes):
        empty = [classes[c] for c in range(len(classes)) if c not in used]
        raise DataError(f"imagefolder:{uri.path}: class folder(s) {', '.join(empty[:5])} hold no images; remove them.")

    def load(ids: np.ndarray) -> list[np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        out = []
        for i in ids:
            path = files[int(i)]
            try:
                with Image.open(path) as im:
                    im = im.convert("L") if im.mode in ("1", "L", "I;16", "I", "F") else im.convert("RGB")
                    out.append(np.asarray(im, dtype=np.uint8))
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise DataError(f"unreadable image {path}: {exc}; fix or remove the file.") from None
        return out

    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(len(files)), labels=np.asarray(labels, dtype=np.int64),
        class_names=classes, loader=load, fingerprint=fingerprint_files(files), info={"files": len(files)},
    )


def build_csv(uri: URI) -> Dataset:
    path = _existing(uri.path, uri, is_dir=False)
    text_col = uri.params.get("text_col", "text")
    label_col = uri.params.get("label_col", "label")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=uri.params.get("delimiter", ","))
            if reader.fieldnames is None or text_col not in reader.fieldnames or label_col not in reader.fieldnames:
                raise DataError(
                    f"csv:{uri.path}: needs columns {text_col!r} and {label_col!r} (found {reader.fieldnames}); "
                    "name them with ?text_col=...&label_col=..."
                )
            rows = [(r[text_col], r[label_col]) for r in reader]
    except UnicodeDecodeError as exc:
        raise DataError(f"csv:{uri.path}: not UTF-8 text ({exc}).") from None
    except csv.Error as exc:
        raise DataError(f"csv:{uri.path}: malformed CSV ({exc}).") from None
    rows = [(t, lab) for t, lab in rows if t is not None and lab is not None and lab.strip() != ""]
    if not rows:
        raise DataError(f"csv:{uri.path}: no labelled rows.")
    texts = [t for t, _ in rows]
    classes = sorted({lab.strip() for _, lab in rows})
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([lookup[lab.strip()] for _, lab in rows], dtype=np.int64)
    return Dataset(
        uri=str(uri), kind="text", ids=np.arange(len(texts)), labels=labels, class_names=classes,
        loader=lambda ids: [texts[i] for i in ids], fingerprint=fingerprint_files([str(path)]),
    )


def build_npz(uri: URI) -> Dataset:
    path = _existing(uri.path, uri, is_dir=False)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "features" not in data or "labels" not in data:
                raise DataError(f"npz:{uri.path}: needs arrays 'features' (N, D) and 'labels' (N,), found {list(data.keys())}.")
            feats = np.asarray(data["features"])
            raw_labels = np.asarray(data["labels"])
            names = [str(n) for n in data["class_names"]] if "class_names" in data else None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"npz:{uri.path}: cannot read ({exc}); is it a NumPy .npz file?") from None
    try:  # numeric, 2-D, at least one sample and one feature, no NaN/Inf
        feats = as_float_matrix(feats, name=f"npz:{uri.path}: features", dtype=np.float32)
    except InputError as exc:
        raise DataError(str(exc)) from None
    if raw_labels.ndim != 1 or feats.shape[0] != raw_labels.shape[0]:
        raise DataError(f"npz:{uri.path}: features {feats.shape} and labels {raw_labels.shape} do not match (N, D) and (N,).")
    classes_found, labels = np.unique(raw_labels, return_inverse=True)
    if names is None or len(names) != classes_found.size:
        names = [str(c) for c in classes_found]
    return Dataset(
        uri=str(uri), kind="features", ids=np.arange(feats.shape[0]), labels=labels.astype(np.int64),
        class_names=names, loader=lambda ids: feats[ids], fingerprint=fingerprint_files([str(path)]),
    )


def check_path_param(uri: URI) -> None:
    if not uri.path:
        raise UsageError(f"{uri.scheme}: needs a path, e.g. {uri.scheme}:{os.path.join('data', 'mine')}")
