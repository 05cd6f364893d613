"""Target tasks for transfer, none of which is a source task of the zoo (see :mod:`.recipes`).

Each target has a train URI (the few labelled samples a user would have), a test URI (disjoint, by the
deterministic ``split``), and OOD sets: corrupted versions of the test set and, for digits, the other
digit domains.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # cross-domain | novel-classes | few-label | natural-images | text
    modality: str  # image | text
    train: str
    test: str
    ood: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


def _shifts(test: str, names: tuple[str, ...] = ("gaussian_noise", "blur", "contrast"), severity: int = 3) -> tuple[str, ...]:
    return tuple(f"shift:{n}:{severity}:{test}" for n in names)


_DIGITS_TEST = "builtin:digits?split=test&n_per_class=100"
_PHOTOS_TEST = "builtin:photo-crops?split=test&n_per_class=40"

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("digits", "cross-domain", "image", "builtin:digits?split=train&n_per_class=50", _DIGITS_TEST,
               _shifts(_DIGITS_TEST) + ("builtin:digits-uci?split=test&n_per_class=40",),
               "handwritten digits (OpenCV); OOD: noise, blur, low contrast, and the UCI digits domain"),
        Target("digits-uci", "cross-domain", "image", "builtin:digits-uci?split=train&n_per_class=30", "builtin:digits-uci?split=test&n_per_class=40",
               _shifts("builtin:digits-uci?split=test&n_per_class=40"), "8x8 UCI handwritten digits, upsampled"),
        Target("glyph-digits", "cross-domain", "image", "builtin:glyphs?charset=digits&n=150&seed=7&split=train&n_per_class=50",
               "builtin:glyphs?charset=digits&n=150&seed=7&split=test&n_per_class=30",
               _shifts("builtin:glyphs?charset=digits&n=150&seed=7&split=test&n_per_class=30"), "printed digits in unseen classes' style"),
        Target("fashion-novel", "novel-classes", "image", "builtin:fashion-mnist?classes=6-9&split=train&n_per_class=50",
               "builtin:fashion-mnist?classes=6-9&split=test&n_per_class=200",
               _shifts("builtin:fashion-mnist?classes=6-9&split=test&n_per_class=200"), "Fashion-MNIST classes 6-9, held out of every source"),
        Target("greek", "novel-classes", "image", "builtin:glyphs?charset=greek&n=40&seed=11&split=train&n_per_class=20",
               "builtin:glyphs?charset=greek&n=40&seed=11&split=test&n_per_class=10",
               _shifts("builtin:glyphs?charset=greek&n=40&seed=11&split=test&n_per_class=10"), "Greek letters: classes no source contains"),
        Target("digits-10shot", "few-label", "image", "builtin:digits?split=train&n_per_class=10", _DIGITS_TEST, _shifts(_DIGITS_TEST),
               "handwritten digits with 10 labels per class"),
        Target("cyrillic-5shot", "few-label", "image", "builtin:glyphs?charset=cyrillic&n=30&seed=13&split=train&n_per_class=5",
               "builtin:glyphs?charset=cyrillic&n=30&seed=13&split=test&n_per_class=7", (), "Cyrillic letters, 5 labels per class"),
        Target("photos", "natural-images", "image", "builtin:photo-crops?split=train&n_per_class=30", _PHOTOS_TEST,
               _shifts(_PHOTOS_TEST) + ("shift:low_resolution:3:" + _PHOTOS_TEST,),
               "crops of 10 real photographs (scikit-image / scikit-learn), one class per photo; test crops from a disjoint stripe"),
        Target("fortunes", "text", "text", "builtin:fortunes?split=train&n_per_class=30", "builtin:fortunes?split=test&n_per_class=10", (),
               "fortune-cookie texts by topic (text encoders)"),
    )
}
