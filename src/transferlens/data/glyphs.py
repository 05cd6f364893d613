"""``builtin:glyphs``: characters rendered from installed fonts, with randomised font, size, position,
rotation and stroke width, white on black.

The character set is a parameter, so the task ranges from 10 classes (``charset=digits``) to several
hundred (``charset=all``: Latin, Greek, Cyrillic, digits and symbols, with characters that no font has
and characters that render identically to an earlier one, e.g. Latin ``A`` and Greek ``Α``, removed).
Every sample is a pure function of ``(seed, class, index)``, so subsets and re-runs are reproducible.
"""

from __future__ import annotations

import functools
import glob
import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import DataError, UsageError

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", str(Path.home() / ".fonts"))

def _span(lo: int, hi: int, alpha_only: bool = False) -> list[str]:
    return [chr(c) for c in range(lo, hi + 1) if not alpha_only or chr(c).isalpha()]


_RANGES = {
    "greek": [chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2] + _span(0x3B1, 0x3C9),
    "cyrillic": _span(0x410, 0x44F),
    "symbols": list("!#$%&*+<=>?@[]{}~^|/\\§¶©®°±µ÷×€£¥¢∞≈≠≤≥∑∏∫√∂∆∇∈∉∩∪⊂⊃⊕⊗←↑→↓↔⇒⇔♠♣♥♦★☆✓✗♪☺"),
    "latin-ext": _span(0xC0, 0x24F, alpha_only=True),
    "ipa": _span(0x250, 0x2AF),
    "armenian": _span(0x531, 0x556) + _span(0x561, 0x587),
    "georgian": _span(0x10D0, 0x10FA),
}

CHARSETS = {
    "digits": string.digits,
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "letters": string.ascii_letters,
    "alnum": string.digits + string.ascii_letters,
    **{name: "".join(chars) for name, chars in _RANGES.items()},
    # the zoo's pretraining pool: no digits, Greek or Cyrillic, which are kept for novel-class targets
    "source": string.ascii_letters
    + "".join(_RANGES["latin-ext"] + _RANGES["ipa"] + _RANGES["armenian"] + _RANGES["georgian"] + _RANGES["symbols"]),
    "all": string.digits
    + string.ascii_letters
    + "".join(sum(_RANGES.values(), [])),
}


@functools.lru_cache(maxsize=4)
def font_files(family: str = "all") -> tuple[str, ...]:
    """Installed TrueType/OpenType fonts, sorted; ``family`` filters by a substring of the file name."""
    files: list[str] = []
    for root in FONT_DIRS:
        files += glob.glob(f"{root}/**/*.ttf", recursive=True) + glob.glob(f"{root}/**/*.otf", recursive=True)
    files = sorted(set(files))
    if family != "all":
        files = [f for f in files if family.lower() in Path(f).name.lower()]
    files = [f for f in files if "MathTeX" not in f]  # a maths font with unusual metrics
    if not files:
        raise DataError(
            f"builtin:glyphs found no fonts (family={family!r}) under {', '.join(FONT_DIRS)}; "
            "install some, e.g. `apt-get install fonts-dejavu-core fonts-liberation`."
        )
    return tuple(files)


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _reference_render(ch: str, font_path: str, size: int = 24) -> np.ndarray:
    img = Image.new("L", (size + 8, size + 8), 0)
    ImageDraw.Draw(img).text((4, 2), ch, fill=255, font=_font(font_path, size))
    return np.asarray(img, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def resolve_charset(charset: str, fonts: tuple[str, ...], limit: int | None = None) -> tuple[str, ...]:
    """Characters of ``charset`` that every font can draw, without visual duplicates (kept in order).

    With ``limit``, stop after that many characters (the first ``limit`` are the same either way). The
    answer depends only on the characters and the font files, so it is memoised on disk.
    """
    import hashlib
    import json

    from ..io import atomic_write_text
    from ..paths import home
    from .base import fingerprint_files

    chars = CHARSETS.get(charset, charset)
    key = hashlib.sha256(f"{chars}|{fingerprint_files(list(fonts))}|v1".encode()).hexdigest()[:24]
    full = home() / "glyph-charsets" / f"{key}.json"
    memo = full if limit is None else full.with_name(f"{key}-{limit}.json")
    for candidate in (full, memo):
        try:
            kept = tuple(json.loads(candidate.read_text(encoding="utf-8")))
            return kept if limit is None else kept[:limit]
        except (OSError, ValueError):
            pass
    kept = _resolve_charset(charset, chars, fonts, limit)
    try:
        atomic_write_text(memo, json.dumps(list(kept), ensure_ascii=False))
    except Exception:  # the memo is an optimisation only
        pass
    return kept


def _resolve_charset(charset: str, chars: str, fonts: tuple[str, ...], limit: int | None) -> tuple[str, ...]:
    chars = list(dict.fromkeys(chars))  # drop repeats, keep order
    missing_refs = {f: _reference_render("\uffff", f) for f in fonts}
    kept: list[str] = []
    kept_renders: list[np.ndarray] = []
    for ch in chars:
        if ch.isspace():
            continue
        renders = [_reference_render(ch, f) for f in fonts]
        if any(np.array_equal(r, missing_refs[f]) or r.max() == 0 for r, f in zip(renders, fonts)):
            continue  # some font lacks it
        sig = renders[0].ravel()
        sig = (sig - sig.mean()) / (sig.std() + 1e-6)
        if any(float(sig @ other) / sig.size > 0.97 for other in kept_renders):
            continue  # looks the same as a character already kept
        kept.append(ch)
        kept_renders.append(sig)
        if limit is not None and len(kept) >= limit:
            break
    if len(kept) < 2:
        raise UsageError(f"builtin:glyphs charset {charset!r} leaves {len(kept)} drawable distinct characters; need 2+.")
    return tuple(kept)


def render_glyph(ch: str, rng: np.random.Generator, fonts: tuple[str, ...], size: int) -> np.ndarray:
    """One randomised rendering of ``ch`` as a uint8 (size, size) image."""
    canvas = 2 * size
    font_path = fonts[int(rng.integers(len(fonts)))]
    font_size = int(round(size * rng.uniform(0.55, 0.85)))
    stroke = int(rng.integers(0, 2 + size // 32))
    font = _font(font_path, max(font_size, 4))
    img = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), ch, font=font, stroke_width=stroke)
    x = (canvas - (right - left)) / 2 - left
    y = (canvas - (bottom - top)) / 2 - top
    draw.text((x, y), ch, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    img = img.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
    shift = rng.uniform(-0.12, 0.12, size=2) * size
    c0 = int(round(canvas / 4 + shift[0]))
    r0 = int(round(canvas / 4 + shift[1]))
    return np.asarray(img.crop((c0, r0, c0 + size, r0 + size)), dtype=np.uint8)


def glyph_loader(chars: tuple[str, ...], n_per_class: int, fonts: tuple[str, ...], size: int, seed: int):
    """Loader for sample ids ``class * n_per_class + i``; renders on demand, deterministically."""

    def load(ids: np.ndarray) -> list[np.ndarray]:
        out = []
        for sid in ids:
            c, i = divmod(int(sid), n_per_class)
            rng = np.random.default_rng([seed, c, i, 31337])
            out.append(render_glyph(chars[c], rng, fonts, size))
        return out

    return load
