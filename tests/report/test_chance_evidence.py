"""Chance-level evidence in the decision, the report and the fine-tuning comparison; the best layer names its criterion
(issue 17, items 2 and 3)."""

from __future__ import annotations

import html as html_lib
import re

import numpy as np
import pytest
from PIL import Image

from transferlens.assess import decide, score_agreement
from transferlens.probe.chance import is_at_chance

K = 4
CLASSES = ["a", "b", "c", "d"]


# ------------------------------------------------------------------------------------ end to end: a destroyed OOD set
def _bars(folder, n_per_class: int, seed: int, constant: bool = False) -> str:
    """Class c = a bright vertical bar in column band c of a 32x32 grey image (plus noise); ``constant``: every
    image the same flat grey, whatever its class (an OOD set destroyed beyond recognition)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True)
        for i in range(n_per_class):
            img = np.full((32, 32), 128, np.uint8)
            if not constant:
                img = (40 + rng.integers(0, 40, (32, 32))).astype(np.uint8)
                img[:, 4 + 7 * c: 9 + 7 * c] = 230
            Image.fromarray(img, "L").save(folder / name / f"{i}.png")
    return f"imagefolder:{folder}"


@pytest.fixture(scope="module")
def destroyed_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from transferlens.assess import assess

    root = tmp_path_factory.mktemp("chance-run")
    train = _bars(root / "train", 12, 0)
    test = _bars(root / "test", 8, 1)
    ood = _bars(root / "ood", 8, 2, constant=True)
    return assess(["zoo:vgg-g50-s16", "zoo:mlp-g50-s16"], train, root / "out", test=test, ood=[ood], top_k=2,
                  gc_samples=0, threads=1)


def _section(page: str, sid: str) -> str:
    start = page.index(f'<section id="{sid}">')
    return page[start: page.index("</section>", start)]


def _text(fragment: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment))


def test_destroyed_ood_set_is_reported_as_chance_level_evidence(destroyed_run):
    page = open(destroyed_run["report"], encoding="utf-8").read()
    rec = _text(_section(page, "recommendation"))
    assert "The OOD evidence is at chance" in rec and "the choice rests on held-out ID accuracy" in rec
    assert "Decided by: measured in-distribution probe accuracy" in rec
    assert "chosen by best ID accuracy" in rec
    d = destroyed_run["assess"]["decision"]
    assert d["basis"] == "id" and d["ood_evidence_at_chance"] is True and d["criterion"] == "best ID accuracy"
    assert any("carry no evidence" in c for c in d["caveats"])
    # the records: every layer of every probed model at chance on the OOD set, no % retained, a warning
    for m, st in destroyed_run["probes"].items():
        p = st["result"]
        assert all(row["at_chance"]["ood_mean"] for row in p["layers"])
        assert p["tunnel"]["mean"]["pct_retained"] is None and p["tunnel"]["mean"]["strength"] == "at chance"
        assert p["recommendation"]["criterion"] == "id"
        assert any("the OOD evidence of this set is at chance" in w for w in p["warnings"])
        # constant images: one prediction for every OOD sample, so the probe is collapsed there too
        assert all(row["collapsed"]["ood"][p["ood_data"][0]] for row in p["layers"])
    cand = _text(_section(page, "candidates"))
    assert "no % retained and no tunnel" in cand and "Chance-level evidence" in cand
    assert "keeps " not in cand.split("per-layer numbers")[0]  # no retained figure from a chance-level curve


def test_numbers_quoted_by_the_recommendation_are_in_its_table(destroyed_run):
    page = open(destroyed_run["report"], encoding="utf-8").read()
    sec = _section(page, "recommendation")
    why = _text(sec[sec.index('<ul class="why">'): sec.index("</ul>", sec.index('<ul class="why">'))])
    table = _text(sec[sec.index('<table'): sec.index("</table>")])
    quoted = [q for q in re.findall(r"\d+(?:\.\d)?%", why)]
    assert quoted, why
    for q in quoted:
        assert q in table, (q, table)


# ------------------------------------------------------------------------------------ decision on hand-made records
def _rank(order: list[str]) -> dict:
    rows = [{"model": m, "error": None, "layer": "flatten", "scores": {"s": -float(i)}, "ranks": {"s": float(i + 1)},
             "combined_rank": float(i + 1), "warnings": {}} for i, m in enumerate(order)]
    rank = {"ranking": list(order), "models": rows, "scores": ["s"], "combined": {"scores": ["s"]}}
    rank["agreement"] = score_agreement(rank)
    return rank


def _probe(id_acc: list[float], ood: list[float], n: int = 40) -> dict:
    """A record in the new format: at-chance flags computed the way probe_features computes them (chance 1/4)."""
    uri = "shift:occlusion:5:imagefolder:/x"
    layers = []
    for i, (a, o) in enumerate(zip(id_acc, ood)):
        layers.append({"layer": f"l{i}", "index": i, "id_accuracy": a, "ood_mean_accuracy": o, "ood_accuracy": {uri: o},
                       "at_chance": {"id": is_at_chance(a, n, 0.25), "ood": {uri: is_at_chance(o, n, 0.25)},
                                     "ood_mean": is_at_chance(o, n, 0.25)},
                       "collapsed": {"id": False, "ood": {uri: False}}})
    flags = [r["at_chance"]["ood_mean"] for r in layers]
    if all(flags):
        best = int(np.argmax(id_acc))
        rec = {"layer": f"l{best}", "index": best, "criterion": "id", "criterion_text": "best ID accuracy"}
        mean = {"start": None, "length": None, "pct_retained": None, "strength": "at chance"}
    else:
        best = int(np.argmax(ood))
        rec = {"layer": f"l{best}", "index": best, "criterion": "ood_mean", "criterion_text": "best mean OOD accuracy"}
        start = best if best < len(ood) - 1 and ood[best] > ood[-1] else None  # as tunnel_start
        mean = {"start": start, "length": 0 if start is None else len(ood) - 1 - best,
                "pct_retained": 100 * ood[-1] / max(ood), "strength": "strong"}
    return {"layers": layers, "ood_data": [uri], "n_classes": K, "n_test": n, "n_ood": {uri: n}, "chance_accuracy": 0.25,
            "chance": {"id": 0.25, "ood": {uri: 0.25}, "ood_mean": 0.25}, "recommendation": rec, "tunnel": {"mean": mean}}


def test_a_model_above_chance_out_of_distribution_still_decides_by_ood():
    probes = {"a": _probe([0.8, 0.9], [0.25, 0.3]), "b": _probe([0.7, 0.8], [0.6, 0.5])}
    d = decide({}, None, _rank(["a", "b"]), probes, {}, [])
    assert d["basis"] == "ood" and d["model"] == "b" and d["ood_evidence_at_chance"] is False
    assert "(chosen by best mean OOD accuracy)" in " ".join(d["why"])
    rows = {r["model"]: r for r in d["evidence"]}
    assert rows["a"]["ood_all_at_chance"] is True and rows["b"]["pct_retained"] == pytest.approx(100 * 0.5 / 0.6)


def test_id_at_chance_everywhere_is_said_in_the_recommendation():
    probes = {"a": _probe([0.25, 0.275], [0.25, 0.25])}
    d = decide({}, None, _rank(["a"]), probes, {}, [])
    why = " ".join(d["why"])
    assert "The OOD evidence is at chance" in why and "the ID evidence is at chance too" in why
    assert any("separate the ID classes" in c for c in d["caveats"])


def _ft(test: float, ood: float, n: int = 40) -> dict:
    uri = "shift:occlusion:5:imagefolder:/x"
    return {"test_accuracy": test, "ood_accuracy": {uri: ood}, "ood_mean_accuracy": ood,
            "record": {"data": {"n_classes": K, "n_test": n, "n_ood": {uri: n}}}}


def test_finetune_comparison_refuses_to_compare_chance_level_ood_accuracies():
    probes = {"a": _probe([0.8, 0.9], [0.6, 0.5])}
    fts = {"ftp": _ft(0.9, 0.30), "plain": _ft(0.9, 0.25)}  # 12/40 and 10/40 on 4 classes: both within noise of 25%
    d = decide({"finetune_epochs": 2}, None, _rank(["a"]), probes, fts, [])
    text = d["why"][-1]
    assert "30.0% mean OOD (at chance)" in text and "cannot be compared out of distribution" in text
    assert "keeps more OOD accuracy" not in text
    assert "the recommended layer l0 (best mean OOD accuracy)" in text
    fts = {"ftp": _ft(0.9, 0.7), "plain": _ft(0.9, 0.25)}
    text = decide({"finetune_epochs": 2}, None, _rank(["a"]), probes, fts, [])["why"][-1]
    assert "FTP keeps more OOD accuracy than plain fine-tuning (+45.0 points); plain fine-tuning is at chance" in text


def test_report_marks_chance_cells_and_names_the_criterion(destroyed_run):
    page = open(destroyed_run["report"], encoding="utf-8").read()
    cand = _section(page, "candidates")
    assert "Recommended layer <strong>" in cand and "(by best ID accuracy)" in cand
    assert 'class="chance"' in cand  # the OOD cells of the per-layer table carry the chance mark
    assert "Best layer" not in page


def test_report_probe_plot_is_absolute_with_a_dashed_chance_line(destroyed_run):
    from transferlens.report.plots import probe_figure

    p = next(iter(destroyed_run["probes"].values()))["result"]
    ax = probe_figure(p, "t").axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["ID (held out)"].get_ydata(), [r["id_accuracy"] for r in p["layers"]])
    assert lines["OOD mean (at chance)"].get_ydata() == pytest.approx([r["ood_mean_accuracy"] for r in p["layers"]])
    chance = lines["chance (25.0%)"]
    assert chance.get_linestyle() == "--" and np.allclose(chance.get_ydata(), 0.25)
    assert "recommended (best ID accuracy)" in lines


def test_a_tie_with_the_last_layer_is_said_as_a_tie():
    probes = {"a": _probe([0.6, 0.98, 0.96], [0.5, 0.69, 0.69], n=100)}
    why = " ".join(decide({}, None, _rank(["a"]), probes, {}, [])["why"])
    assert "slightly more robust" not in why
    assert "Layer l1 and the last layer l2 are equally robust (69.0% mean OOD); l1 is taken for its ID accuracy (98.0% vs 96.0%)" in why


def test_records_written_before_the_chance_fields_are_read_the_same_way():
    """An old probe record (no at_chance fields, a tunnel computed from a chance-level curve): the flags come from its
    sizes, and neither the decision nor the report quotes its % retained."""
    from transferlens.report.plots import probe_figure

    old = _probe([0.8, 0.9, 0.85], [0.3, 0.25, 0.2])
    for row in old["layers"]:
        del row["at_chance"], row["collapsed"]
    del old["chance"]
    old["recommendation"] = {"layer": "l0", "index": 0}
    old["tunnel"] = {"mean": {"start": 0, "length": 2, "pct_retained": 66.7, "strength": "strong"}}
    d = decide({}, None, _rank(["a"]), {"a": old}, {}, [])
    why = " ".join(d["why"])
    assert d["basis"] == "id" and "The OOD evidence is at chance" in why and "keeps only" not in why
    assert d["evidence"][0]["pct_retained"] is None and d["evidence"][0]["layer"] == "l1"
    ax = probe_figure(old, "old").axes[0]
    assert not ax.patches  # no tunnel shading from a chance-level curve
