"""The recommendation says what pretraining buys, with numbers: real backbone vs its random-init twin, and a zoo
model that beats the real backbones says so (issue 16)."""

from __future__ import annotations

from transferlens.assess.decision import _pretraining_sentences


def _rows(knn: dict[str, float]) -> dict[str, dict]:
    return {m: {"model": m, "scores": {"knn_accuracy": v}} for m, v in knn.items()}


def test_real_backbone_against_its_twin():
    rows = _rows({"torchvision:mobilenet_v2": 0.81, "torchvision:mobilenet_v2?pretrained=false": 0.42, "zoo:a": 0.5})
    (s,) = _pretraining_sentences("torchvision:mobilenet_v2", rows, {}, use_ood=True)
    assert s.startswith("ImageNet pretraining pays here") and "81.0% vs 42.0%" in s and "+39.0 points" in s
    assert "kNN" in s


def test_no_measurable_gain_is_said_plainly():
    rows = _rows({"timm:x?size=96": 0.500, "timm:x?size=96&pretrained=false": 0.497})
    (s,) = _pretraining_sentences("timm:x?size=96", rows, {}, use_ood=False)
    assert s.startswith("ImageNet pretraining buys nothing measurable here")


def test_zoo_winner_is_compared_with_the_best_real_backbone():
    rows = _rows({"zoo:vgg": 0.93, "torchvision:m": 0.80, "torchvision:m?pretrained=false": 0.70,
                  "timm:e": 0.85, "timm:e?pretrained=false": 0.60})
    (s,) = _pretraining_sentences("zoo:vgg", rows, {}, use_ood=False)
    assert "A zoo model beats the real pretrained backbones" in s and "timm:e" in s and "+8.0 points" in s


def test_probe_numbers_are_used_when_both_were_probed():
    probe = lambda acc: {"layers": [{"index": 0, "layer": "l", "id_accuracy": acc, "ood_mean_accuracy": None}],  # noqa: E731
                         "recommendation": {"index": 0}}
    rows = _rows({"timm:e": 0.1, "timm:e?pretrained=false": 0.9})  # kNN says the opposite: must not be used
    (s,) = _pretraining_sentences("timm:e", rows, {"timm:e": probe(0.7), "timm:e?pretrained=false": probe(0.4)}, use_ood=False)
    assert "70.0% vs 40.0% held-out ID linear-probe accuracy" in s
