"""The target suite (issue 18): >= 30 image and >= 6 text targets generated from the data layer, to choose
``rank``'s default on.

Every target is a :class:`SuiteTarget`: a :class:`~.targets.Target` with a ``group`` for grouped
cross-validation. Targets that share a base data set (and so a test set or its images) are one group, so
that a held-out fold never sees a near-copy of itself in training: the OpenCV digits (every few-shot level,
class subset and corruption of them), the UCI digits, the printed digits, Fashion-MNIST classes 6-9, Greek,
Cyrillic, the photo crops and the fortunes texts (eight groups).

What is generated (``build_suite``):

- every target of :data:`.targets.TARGETS`, unchanged (a new one is its own group unless ``GROUP_OF`` says otherwise);
- few-shot levels of the digits: 5, 20 and 100 labels per class (10 and 50 are in ``TARGETS``), and 10 per
  class for the UCI digits, Fashion-MNIST 6-9 and Cyrillic;
- class subsets: digits 0-4 and 5-9, the first 25 Greek letters;
- every corruption of :mod:`transferlens.data.shifts` at severities 2 and 4 (``SHIFT_SEVERITIES``), applied
  to the train *and* the test set of one base target (the corruption is the target domain, not an OOD
  set); the corruptions go round-robin over the image bases (``SHIFT_BASES``), so inversion, occlusion,
  rescaling (``low_resolution``, ``pixelate``) and the rest each land on one base;
- fortunes topic subsets (four disjoint groups of topics) and 5 and 10 texts per topic.

German fortunes (Debian ``fortunes-de``) are not in the suite: the package is not installed on this
machine and ``builtin:fortunes`` reads only ``/usr/share/games/fortunes`` (no language parameter).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data.shifts import CORRUPTIONS
from ..errors import UsageError
from .targets import TARGETS, Target


@dataclass(frozen=True)
class SuiteTarget(Target):
    """A target with its cross-validation ``group`` (targets of one base data set share a group)."""

    group: str = ""


SHIFT_SEVERITIES = (2, 4)
#: Base of each group: (train URI without n_per_class, test URI, n_per_class of train, kind).
_DIGITS = "builtin:digits"
_UCI = "builtin:digits-uci"
_GLYPH_DIGITS = "builtin:glyphs?charset=digits&n=150&seed=7"
_FASHION = "builtin:fashion-mnist?classes=6-9"
_GREEK = "builtin:glyphs?charset=greek&n=40&seed=11"
_CYRILLIC = "builtin:glyphs?charset=cyrillic&n=30&seed=13"
_FORTUNES = "builtin:fortunes"

#: Which original target each group's base is, and the n_per_class of its train / test sets.
GROUP_OF = {"digits": "digits", "digits-10shot": "digits", "digits-uci": "digits-uci", "glyph-digits": "glyph-digits",
            "fashion-novel": "fashion-novel", "greek": "greek", "cyrillic-5shot": "cyrillic", "fortunes": "fortunes",
            "photos": "photos"}
#: (base URI, train n_per_class, test n_per_class) of the bases the corruptions go round-robin over.
SHIFT_BASES: tuple[tuple[str, str, int, int], ...] = (
    ("digits", _DIGITS, 30, 50),
    ("fashion-novel", _FASHION, 50, 100),
    ("glyph-digits", _GLYPH_DIGITS, 30, 30),
    ("greek", _GREEK, 10, 10),
    ("digits-uci", _UCI, 30, 40),
)
#: Four disjoint groups of the 39 fortunes topics (every topic with >= 50 texts).
FORTUNE_TOPICS = {
    "tech": ("computers", "linux", "perl", "debian", "linuxcookie", "science", "startrek", "news"),
    "people": ("people", "men-women", "love", "kids", "humorists", "ethnic", "politics", "work", "education", "law"),
    "life": ("art", "food", "drugs", "pets", "sports", "medicine", "songs-poems", "literature", "riddles"),
    "sayings": ("wisdom", "tao", "platitudes", "fortunes", "cookie", "paradoxum", "goedel", "zippy", "definitions",
                "miscellaneous", "disclaimer", "knghtbrd"),
}


def _uri(base: str, **params: object) -> str:
    sep = "&" if "?" in base else "?"
    return base + sep + "&".join(f"{k}={v}" for k, v in params.items())


def _split(base: str, train_n: int, test_n: int, **extra: object) -> tuple[str, str]:
    return _uri(base, **extra, split="train", n_per_class=train_n), _uri(base, **extra, split="test", n_per_class=test_n)


def build_suite() -> dict[str, SuiteTarget]:
    """Every suite target by name (deterministic; those of ``TARGETS`` first)."""
    out: list[SuiteTarget] = [SuiteTarget(**{f: getattr(t, f) for f in ("name", "kind", "modality", "train", "test", "ood", "description")},
                                          group=GROUP_OF.get(t.name, t.name)) for t in TARGETS.values()]

    def add(name: str, kind: str, modality: str, group: str, train: str, test: str, what: str) -> None:
        out.append(SuiteTarget(name, kind, modality, train, test, (), what, group=group))

    # few-shot levels (5 to 100 per class)
    digits_test = TARGETS["digits"].test
    for k in (5, 20, 100):
        add(f"digits-{k}shot", "few-label", "image", "digits", _uri(_DIGITS, split="train", n_per_class=k), digits_test,
            f"handwritten digits with {k} labels per class")
    for name, base, test_n, group, what in (("digits-uci-10shot", _UCI, 40, "digits-uci", "UCI digits"),
                                            ("fashion-novel-10shot", _FASHION, 200, "fashion-novel", "Fashion-MNIST classes 6-9"),
                                            ("cyrillic-10shot", _CYRILLIC, 7, "cyrillic", "Cyrillic letters")):
        add(name, "few-label", "image", group, *_split(base, 10, test_n), f"{what}, 10 labels per class")
    # class subsets
    for lo, hi in ((0, 4), (5, 9)):
        add(f"digits-{lo}to{hi}", "class-subset", "image", "digits", *_split(_DIGITS, 50, 100, classes=f"{lo}-{hi}"),
            f"handwritten digits {lo}-{hi} only")
    add("greek-25", "class-subset", "image", "greek", *_split(_GREEK, 20, 10, classes="0-24"), "the first 25 Greek glyph classes")
    # every corruption at two severities, as the target domain (train and test corrupted alike)
    for i, corruption in enumerate(CORRUPTIONS):
        group, base, train_n, test_n = SHIFT_BASES[i % len(SHIFT_BASES)]
        train, test = _split(base, train_n, test_n)
        for sev in SHIFT_SEVERITIES:
            add(f"{group}+{corruption}-{sev}", "shifted", "image", group, f"shift:{corruption}:{sev}:{train}",
                f"shift:{corruption}:{sev}:{test}", f"{group} with {corruption} at severity {sev} on train and test")
    # text: topic subsets and few-shot levels
    for topic, names in FORTUNE_TOPICS.items():
        add(f"fortunes-{topic}", "text", "text", "fortunes", *_split(_FORTUNES, 30, 10, classes=",".join(names)),
            f"fortunes, {len(names)} {topic} topics")
    for k in (5, 10):
        add(f"fortunes-{k}shot", "text", "text", "fortunes", *_split(_FORTUNES, k, 10), f"fortunes, {k} texts per topic")
    return {t.name: t for t in out}


SUITE: dict[str, SuiteTarget] = build_suite()


def lookup_target(name: str) -> Target:
    """A target of :data:`.targets.TARGETS` or of the suite, by name."""
    if name in TARGETS:
        return TARGETS[name]
    if name in SUITE:
        return SUITE[name]
    raise UsageError(f"unknown target {name!r}; see `transferlens zoo targets` (and `--suite`).")


def group_of(name: str) -> str:
    """The cross-validation group of a target (its own name when it is in no group)."""
    t = SUITE.get(name)
    return t.group if t is not None and t.group else GROUP_OF.get(name, name)
