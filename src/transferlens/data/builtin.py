"""The built-in data sources, all offline on a Debian machine set up by ``scripts/setup.sh``.

==============  ======  ==========================================================================
name            kind    origin
==============  ======  ==========================================================================
fashion-mnist   image   Debian ``dataset-fashion-mnist``: 70,000 28×28 gray images, 10 classes
                        (official split: the first 60,000 are ``split=train``)
digits          image   ``digits.png`` of Debian ``opencv-doc``: 5,000 20×20 handwritten digits
digits-uci      image   scikit-learn's bundled UCI digits: 1,797 8×8 images
glyphs          image   characters rendered from installed fonts (10 to several hundred classes)
photo-crops     image   crops of 10 photographs bundled with scikit-image / scikit-learn (:mod:`.photos`)
fortunes        text    Debian ``fortunes``: ~15,000 texts labelled by topic (file name)
==============  ======  ==========================================================================

The three digit sources are three domains of the same ten classes (with ``glyphs?charset=digits``).
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from ..uri import URI
from . import debian, glyphs, photos
from .base import Dataset, fingerprint_files

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGIT_CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class BuiltinSource:
    name: str
    kind: str
    description: str
    params: tuple[str, ...]  # source-specific query parameters
    build: Callable[[URI], Dataset]


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format): magic, dims (big-endian int32), then uint8 data."""
    try:
        raw = gzip.open(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}; reinstall the Debian package dataset-fashion-mnist.") from None
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({data.size} of {int(np.prod(dims))} values); reinstall the package.")
    return data.reshape(dims)


@functools.lru_cache(maxsize=1)
def _fashion_arrays() -> tuple[np.ndarray, np.ndarray, str]:
    d = debian.fashion_mnist_dir()
    files = [d / f"{p}-{k}-idx{n}-ubyte.gz" for p in ("train", "t10k") for k, n in (("images", 3), ("labels", 1))]
    tr_x, tr_y, te_x, te_y = (_read_idx(f) for f in files)
    return np.concatenate([tr_x, te_x]), np.concatenate([tr_y, te_y]).astype(np.int64), fingerprint_files([str(f) for f in files])


def _array_loader(images: np.ndarray) -> Callable[[np.ndarray], list[np.ndarray]]:
    return lambda ids: [images[i] for i in ids]


def build_fashion_mnist(uri: URI) -> Dataset:
    images, labels, fp = _fashion_arrays()
    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(labels.size), labels=labels, class_names=list(FASHION_CLASSES),
        loader=_array_loader(images), fingerprint=fp, info={"official_train": 60000, "native_size": 28},
    )


@functools.lru_cache(maxsize=1)
def _opencv_digits() -> tuple[np.ndarray, np.ndarray, str]:
    from PIL import Image

    path = debian.digits_png()
    try:
        sheet = np.asarray(Image.open(path).convert("L"))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}; delete it and re-run `bash scripts/setup.sh`.") from None
    if sheet.shape != (1000, 2000):
        raise DataError(f"{path} has shape {sheet.shape}, expected (1000, 2000); delete it and re-run setup.")
    # 50 rows x 100 columns of 20x20 cells; rows 5d..5d+4 hold digit d.
    cells = sheet.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    labels = np.repeat(np.arange(10), 500)
    return np.ascontiguousarray(cells), labels, fingerprint_files([str(path)])


def build_digits(uri: URI) -> Dataset:
    images, labels, fp = _opencv_digits()
    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(labels.size), labels=labels, class_names=list(DIGIT_CLASSES),
        loader=_array_loader(images), fingerprint=fp, info={"native_size": 20},
    )


def build_digits_uci(uri: URI) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(images.shape[0]), labels=bunch.target.astype(np.int64),
        class_names=list(DIGIT_CLASSES), loader=_array_loader(images), fingerprint="sklearn-load_digits",
        info={"native_size": 8},
    )


DEFAULT_GLYPH_FONTS = "dejavu"  # fonts-dejavu-core + fonts-dejavu-extra; `fonts=all` takes every installed font


def build_glyphs(uri: URI) -> Dataset:
    charset = uri.params.get("charset", "alnum")
    # DejaVu by default: the glyph images (and so the zoo's sources and targets) must not change when an
    # unrelated package installs more fonts (fonts-liberation arrives with chromium, for instance).
    family = uri.params.get("fonts", DEFAULT_GLYPH_FONTS)
    n = uri.get_int("n", 100, minimum=1)
    size = uri.get_int("render_size", 32, minimum=8)
    seed = uri.get_int("seed", 0)
    fonts = glyphs.font_files(family)
    wanted = uri.get_int("n_classes", None, minimum=2)
    chars = glyphs.resolve_charset(charset, fonts, wanted)
    n_classes = wanted or len(chars)
    if n_classes > len(chars):
        raise DataError(f"{uri}: n_classes={n_classes} but charset {charset!r} has {len(chars)} drawable distinct characters.")
    chars = chars[:n_classes]
    labels = np.repeat(np.arange(n_classes), n)
    return Dataset(
        uri=str(uri), kind="image", ids=np.arange(labels.size), labels=labels, class_names=list(chars),
        loader=glyphs.glyph_loader(chars, n, fonts, size, seed), fingerprint=fingerprint_files(list(fonts)),
        info={"native_size": size, "fonts": len(fonts)},
    )


@functools.lru_cache(maxsize=2)
def _fortunes(min_texts: int) -> tuple[list[str], np.ndarray, list[str], str]:
    root = debian.fortunes_dir()
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix not in (".dat", ".u8") and p.stat().st_size > 0)
    texts: list[str] = []
    labels: list[int] = []
    topics: list[str] = []
    for path in files:
        raw = path.read_text(encoding="utf-8", errors="replace")
        items = [t.strip() for t in raw.split("\n%\n")]
        items = [t.rstrip("%").strip() for t in items]
        items = [t for t in items if len(t) >= 10]
        if len(items) < min_texts:
            continue
        labels += [len(topics)] * len(items)
        topics.append(path.name)
        texts += items
    if len(topics) < 2:
        raise DataError(f"builtin:fortunes found {len(topics)} topics with >= {min_texts} texts in {root}.")
    return texts, np.asarray(labels, dtype=np.int64), topics, fingerprint_files([str(f) for f in files])


def build_fortunes(uri: URI) -> Dataset:
    min_texts = uri.get_int("min_texts", 50, minimum=1)
    texts, labels, topics, fp = _fortunes(min_texts)
    return Dataset(
        uri=str(uri), kind="text", ids=np.arange(labels.size), labels=labels, class_names=list(topics),
        loader=lambda ids: [texts[i] for i in ids], fingerprint=fp, info={"min_texts": min_texts},
    )


BUILTINS: dict[str, BuiltinSource] = {
    s.name: s
    for s in (
        BuiltinSource("fashion-mnist", "image", "Fashion-MNIST, 70k 28x28 clothing images, 10 classes (Debian dataset-fashion-mnist)", (), build_fashion_mnist),
        BuiltinSource("digits", "image", "5,000 20x20 handwritten digits, 10 classes (digits.png of Debian opencv-doc)", (), build_digits),
        BuiltinSource("digits-uci", "image", "1,797 8x8 handwritten digits, 10 classes (scikit-learn's bundled UCI digits)", (), build_digits_uci),
        BuiltinSource("glyphs", "image", "characters rendered from fonts (fonts=dejavu by default, so the images do not change when other fonts are installed; fonts=all for every installed font); charset=digits|upper|lower|letters|alnum|greek|cyrillic|symbols|all|<chars>, n_classes, n (per class), render_size, fonts", ("charset", "n_classes", "n", "render_size", "fonts"), build_glyphs),
        BuiltinSource("photo-crops", "image", "crops of 10 real photographs (scikit-image / scikit-learn sample images), one class per photo; train and test crops come from disjoint stripes of each photo; n (per class and split: 300 train / 200 test), crop_size (64)", ("n", "crop_size"), photos.build_photo_crops),
        BuiltinSource("fortunes", "text", "~15k texts labelled by topic (Debian fortunes); topics with >= min_texts (50) texts", ("min_texts",), build_fortunes),
    )
}
