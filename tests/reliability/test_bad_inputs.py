"""The bad-input catalogue (docs/bad_inputs.md): one test per row.

Every row feeds one kind of bad input to one group of entry points -- the metrics API (collapse, scores via
``compute_score``, ranks), the ridge probe, ``load_data``, ``resolve_model``, ``extract`` and its cache, and
the ``rank`` / ``probe`` / ``extract`` / ``geometry`` / ``finetune`` commands -- and checks the documented
behaviour: a clear error of the right type naming the problem, or a documented result (with a reliability
warning where the catalogue says so). CLI rows also check the exit code, that no traceback or raw exception
escapes, and that nothing is left in the output directory.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from transferlens.cli.main import app
from transferlens.data import load_data
from transferlens.data.base import ImageSpec
from transferlens.errors import CacheError, DataError, InputError, ModelError, UsageError
from transferlens.features import FeatureSet, extract
from transferlens.metrics.collapse import cdnv, nc1, nc2, neural_collapse
from transferlens.metrics.fewshot import few_shot_eval
from transferlens.metrics.rank import effective_rank, numerical_rank, rankme
from transferlens.metrics.scores import SCORES, compute_score
from transferlens.models import resolve_model
from transferlens.probe.ridge import fit_ridge_probe
from transferlens.zoo import registry

runner = CliRunner()

MODEL = "zoo:mlp-g50-s16"  # shipped, offline, loads in well under a second
DIGITS = "builtin:digits-uci?n_per_class=5"  # scikit-learn's digits: no Debian package needed
FEATURE_MODEL = "timm:unused"  # npz data holds features: the model URI is resolved but never loaded
COLLAPSE = {"nc1": nc1, "nc2": nc2, "cdnv": cdnv, "neural_collapse": neural_collapse}
RANKS = {"numerical_rank": numerical_rank, "effective_rank": effective_rank, "rankme": rankme}
LABELLED = [n for n, s in SCORES.items() if s.needs_labels]
FEATURE_SCORES = [n for n, s in SCORES.items() if s.uses_features]
N_LE_D = sorted(n for n, s in SCORES.items() if s.unreliable_when_n_le_d)  # h_score, transrate, sfda


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ helpers
def planted(n: int = 40, d: int = 8, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable features: class c is shifted by 3 along axis c."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.standard_normal((n, d)) + 3 * np.eye(k, d)[y], y


def score(name: str, x, y) -> object:
    """``compute_score`` with uniform source probabilities for the scores that need them."""
    if SCORES[name].needs_source_probs:
        n = len(y)
        return compute_score(name, None, y, source_probs=np.full((n, 5), 0.2))
    return compute_score(name, x, y if SCORES[name].needs_labels else None)


def npz(path: Path, features, labels) -> str:
    np.savez(path, features=np.asarray(features), labels=np.asarray(labels))
    return f"npz:{path}"


def image_folder(root: Path, corrupt: dict[str, bytes]) -> str:
    """Two classes of four 8x8 PNGs each, plus the given corrupt files (name -> bytes) in class ``a``."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / cls / f"{i}.png")
    for name, content in corrupt.items():
        (root / "a" / name).write_bytes(content)
    return f"imagefolder:{root}"


def truncated_weights(tmp_path: Path) -> Path:
    good = (registry.model_dir("mlp-g50-s16") / registry.WEIGHTS).read_bytes()
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(good[: len(good) // 2])
    return path


def command(name: str, data: str, out: Path, model: str = FEATURE_MODEL) -> list[str]:
    return {
        "rank": ["rank", "-d", data, "-m", model, "-o", str(out)],
        "probe": ["probe", "-m", model, "-d", data, "-o", str(out)],
        "geometry": ["geometry", "-m", model, "-d", data, "--gc-samples", "0", "--episodes", "20", "-o", str(out)],
        "extract": ["extract", "-m", model, "-d", data, "-o", str(out / "features.npz")],
        "finetune": ["finetune", "-m", model, "-d", data, "--epochs", "1", "-o", str(out)],
    }[name]


def cli(args: list[str]):
    """Run the CLI; a raw exception (a bug, not a user error) must never escape."""
    res = runner.invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


def cli_fails(args: list[str], code: int, phrase: str, out: Path) -> str:
    res = cli(args)
    assert res.exit_code == code, res.output
    assert "error:" in res.output and phrase in res.output, res.output
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))  # no partial output
    return res.output


def caught_warnings(fn, *args, **kwargs) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    return value, [str(w.message) for w in caught]


# =============================================================================================== 1. empty
def test_empty_metrics():
    x, y = np.zeros((0, 8)), np.zeros(0, dtype=int)
    for fn in COLLAPSE.values():
        with pytest.raises(InputError, match="empty"):
            fn(x, y)
    for fn in RANKS.values():
        with pytest.raises(InputError, match=r"features is empty \(shape \(0, 8\)\)"):
            fn(x)
    for name in SCORES:
        with pytest.raises(InputError, match="empty"):
            score(name, x, y)


def test_empty_probe():
    with pytest.raises(InputError, match="features is empty"):
        fit_ridge_probe(np.zeros((0, 8)), np.zeros(0, dtype=int))


def test_empty_data(tmp_path):
    with pytest.raises(DataError, match=r"features is empty \(shape \(0, 8\)\)"):
        load_data(npz(tmp_path / "e.npz", np.zeros((0, 8)), np.zeros(0)))


def test_empty_extract():
    empty = load_data(DIGITS).subset(np.zeros(0, dtype=np.int64))
    with pytest.raises(UsageError, match="selects no samples"):
        extract(MODEL, empty)


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract"])
def test_empty_cli(cmd, tmp_path):
    data = npz(tmp_path / "e.npz", np.zeros((0, 8)), np.zeros(0))
    cli_fails(command(cmd, data, tmp_path / "out"), 1, "features is empty", tmp_path / "out")


# ======================================================================================== 2. single class
def test_single_class_metrics():
    x, _ = planted()
    y = np.zeros(40, dtype=int)
    for fn in COLLAPSE.values():
        with pytest.raises(InputError, match="at least 2 classes, got 1"):
            fn(x, y)
    for name in LABELLED:
        with pytest.raises(InputError, match="at least 2 classes, got 1"):
            score(name, x, y)
    assert np.isfinite(compute_score("etran_energy", x).value)  # label-free: labels are not used


def test_single_class_probe():
    x, _ = planted()
    with pytest.raises(InputError, match="at least 2 classes, got 1"):
        fit_ridge_probe(x, np.zeros(40, dtype=int))


def test_single_class_data(tmp_path):
    x, _ = planted()
    ds = load_data(npz(tmp_path / "one.npz", x, np.zeros(40)))  # loads: the consumers check the classes
    assert ds.n_classes == 1 and len(ds) == 40
    assert load_data("builtin:digits-uci?classes=3&n_per_class=5").n_classes == 1


@pytest.mark.parametrize("cmd,phrase", [
    ("rank", "need at least 2 classes, got 1"),
    ("probe", "probing needs >= 2 classes"),
    ("geometry", "need at least 2 classes, got 1"),
    ("finetune", "fine-tuning needs at least 2"),
])
def test_single_class_cli(cmd, phrase, tmp_path):
    if cmd == "finetune":
        args = command(cmd, "builtin:digits-uci?classes=3&n_per_class=5", tmp_path / "out", model=MODEL)
    else:
        x, _ = planted()
        args = command(cmd, npz(tmp_path / "one.npz", x, np.zeros(40)), tmp_path / "out")
    cli_fails(args, 1, phrase, tmp_path / "out")


def test_single_class_cli_extract(tmp_path):
    """Extraction does not look at the labels: a single class is extracted like any other data."""
    x, _ = planted()
    res = cli(command("extract", npz(tmp_path / "one.npz", x, np.zeros(40)), tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "features.npz").exists()


# ================================================================================= 3. a class with one sample
def _one_sample_class() -> tuple[np.ndarray, np.ndarray]:
    x, y = planted()
    y = y.copy()
    y[0] = 4  # class 4 has exactly one sample
    return x, y


def test_one_sample_class_metrics():
    x, y = _one_sample_class()
    for fn in COLLAPSE.values():
        with pytest.raises(InputError, match=r"class\(es\) \[4\] have fewer than 2 samples"):
            fn(x, y)
    for name in LABELLED:
        with pytest.raises(InputError, match=r"class\(es\) \[4\] have fewer than 2 samples"):
            score(name, x, y)
    res, msgs = caught_warnings(few_shot_eval, x, y, n_way=2, k_shot=1, n_query=1, n_episodes=5)
    assert 0 <= res.mean <= 1 and any("left out" in m for m in msgs)  # few-shot: the class is left out


def test_one_sample_class_probe():
    with pytest.raises(InputError, match=r"class\(es\) \[4\] have fewer than 2 samples"):
        fit_ridge_probe(*_one_sample_class())


@pytest.mark.parametrize("cmd,phrase", [
    ("rank", "class(es) ['4'] have fewer than 2 samples"),
    ("probe", "every ID class needs >= 2 samples"),
    ("geometry", "class(es) [4] have fewer than 2 samples"),
    ("finetune", "cannot hold out a validation split"),
])
def test_one_sample_class_cli(cmd, phrase, tmp_path):
    if cmd == "finetune":
        args = command(cmd, "builtin:digits-uci?n_per_class=1", tmp_path / "out", model=MODEL)
    else:
        args = command(cmd, npz(tmp_path / "one.npz", *_one_sample_class()), tmp_path / "out")
    cli_fails(args, 1, phrase, tmp_path / "out")


# ================================================================================= 4. mismatched lengths
def test_mismatched_lengths_metrics():
    x, y = planted()
    for fn in COLLAPSE.values():
        with pytest.raises(InputError, match="labels has 30 entries but the features have 40 rows"):
            fn(x, y[:30])
    for name in FEATURE_SCORES:
        if SCORES[name].needs_labels:
            with pytest.raises(InputError, match="labels has 30 entries but the features have 40 rows"):
                compute_score(name, x, y[:30])
    for name in ("leep", "nce"):
        with pytest.raises(InputError, match="source_probs has 30 rows but there are 40 samples"):
            compute_score(name, None, y, source_probs=np.full((30, 5), 0.2))


def test_mismatched_lengths_probe():
    x, y = planted()
    with pytest.raises(InputError, match="labels has 30 entries but the features have 40 rows"):
        fit_ridge_probe(x, y[:30])


def test_mismatched_lengths_data(tmp_path):
    x, y = planted()
    with pytest.raises(DataError, match=r"features \(40, 8\) and labels \(30,\) do not match"):
        load_data(npz(tmp_path / "m.npz", x, y[:30]))


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract"])
def test_mismatched_lengths_cli(cmd, tmp_path):
    x, y = planted()
    cli_fails(command(cmd, npz(tmp_path / "m.npz", x, y[:30]), tmp_path / "out"), 1, "do not match", tmp_path / "out")


# ===================================================================================== 5. NaN / Inf
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_metrics(bad):
    x, y = planted()
    x[3, 2] = bad
    for fn in COLLAPSE.values():
        with pytest.raises(InputError, match="NaN or Inf in 1 of 40 rows"):
            fn(x, y)
    for fn in RANKS.values():
        with pytest.raises(InputError, match="NaN or Inf in 1 of 40 rows"):
            fn(x)
    for name in FEATURE_SCORES:
        with pytest.raises(InputError, match="NaN or Inf in 1 of 40 rows"):
            score(name, x, y)
    probs = np.full((40, 5), 0.2)
    probs[0, 0] = bad
    with pytest.raises(InputError, match="source_probs contain NaN or Inf"):
        compute_score("leep", None, y, source_probs=probs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_probe(bad):
    x, y = planted()
    x[3, 2] = bad
    with pytest.raises(InputError, match="NaN or Inf in 1 of 40 rows"):
        fit_ridge_probe(x, y)


def test_nan_inf_data(tmp_path):
    x, y = planted()
    x[3, 2], x[5, 1] = np.nan, -np.inf
    with pytest.raises(DataError, match="NaN or Inf in 2 of 40 rows"):
        load_data(npz(tmp_path / "n.npz", x, y))


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract"])
def test_nan_inf_cli(cmd, tmp_path):
    x, y = planted()
    x[3, 2] = np.nan
    cli_fails(command(cmd, npz(tmp_path / "n.npz", x, y), tmp_path / "out"), 1, "NaN or Inf", tmp_path / "out")


# ================================================================================== 6. constant features
def test_constant_features_collapse():
    x, y = np.ones((40, 8)), np.arange(40) % 4
    with pytest.raises(InputError, match="all class means coincide"):
        nc1(x, y)
    with pytest.raises(InputError, match="all class means coincide"):
        neural_collapse(x, y)
    with pytest.raises(InputError, match="all class vectors are zero"):
        nc2(x, y)
    value, msgs = caught_warnings(cdnv, x, y)
    assert value == np.inf and any("class means coincide" in m for m in msgs)


def test_constant_features_ranks():
    x = np.ones((40, 8))
    assert numerical_rank(x) == 0
    assert rankme(x) == pytest.approx(1.0, abs=1e-4)  # uncentred: the constant vector itself, rank 1
    with pytest.raises(InputError, match="constant features"):
        effective_rank(x)


def test_constant_features_scores():
    x, y = np.ones((40, 8)), np.arange(40) % 4
    for name in FEATURE_SCORES:
        with pytest.raises(InputError, match="features are constant"):
            score(name, x, y)
    assert np.isfinite(compute_score("leep", None, y, source_probs=np.full((40, 5), 0.2)).value)  # no features used


def test_constant_features_probe():
    x, y = np.ones((40, 8)), np.arange(40) % 4
    probe, msgs = caught_warnings(lambda: fit_ridge_probe(x, y)[0])
    assert not msgs  # no overflow / ill-conditioning warnings
    assert probe.score(x, y) == pytest.approx(0.25)  # chance: one class predicted for everything


@pytest.mark.parametrize("cmd,code,phrase", [
    ("rank", 1, "no candidate could be scored"),
    ("geometry", 1, "all class means coincide"),
])
def test_constant_features_cli(cmd, code, phrase, tmp_path):
    out = cli_fails(command(cmd, npz(tmp_path / "c.npz", np.ones((40, 8)), np.arange(40) % 4), tmp_path / "out"),
                    code, phrase, tmp_path / "out")
    if cmd == "rank":
        assert "features are constant" in out


def test_constant_features_cli_probe(tmp_path):
    """probe: a documented result (chance accuracy, NC1 not available), no numpy warnings."""
    res = cli(command("probe", npz(tmp_path / "c.npz", np.ones((40, 8)), np.arange(40) % 4), tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert "NC1 not available" in res.output and "RuntimeWarning" not in res.output
    import json

    record = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert record["layers"][0]["id_accuracy"] == pytest.approx(0.25) and record["layers"][0]["nc1"] is None


# ======================================================================================= 7. D >> N
def test_d_much_larger_than_n_collapse_and_ranks():
    x, y = planted(n=20, d=5000)
    value, msgs = caught_warnings(nc1, x, y)
    assert 0 <= value < 0.1 and any("N <= D" in m and "biased towards collapse" in m for m in msgs)
    assert np.isfinite(caught_warnings(cdnv, x, y)[0])
    rank, msgs = caught_warnings(numerical_rank, x)
    assert rank <= 19 and any("capped at 19" in m for m in msgs)
    assert 1 <= effective_rank(x) <= 20 and 1 <= rankme(x) <= 20


def test_d_much_larger_than_n_scores():
    """D = 50 N (the D x D scores cost O(D^3): h_score takes ~35 s at D = 5000 on one core)."""
    x, y = planted(n=20, d=1000)
    for name in SCORES:
        res = score(name, x, y)
        assert np.isfinite(res.value), name
        if name in N_LE_D:
            assert any("N=20 <= D=1000" in w for w in res.warnings), (name, res.warnings)
    knn = compute_score("knn_accuracy", x, y)  # k = 20 > N - 1: every other sample votes
    assert any("k=20 >= N-1=19" in w for w in knn.warnings)


def test_d_much_larger_than_n_probe():
    x, y = planted(n=20, d=1000)
    probe, _ = fit_ridge_probe(x, y)
    assert probe.coef.shape == (1000, 4) and 0 <= probe.score(x, y) <= 1


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry"])
def test_d_much_larger_than_n_cli(cmd, tmp_path):
    """A result, with the reliability warnings in the record (and, for rank, their count on the terminal)."""
    import json

    x, y = planted(n=20, d=1000)
    res = cli(command(cmd, npz(tmp_path / "d.npz", x, y), tmp_path / "out"))
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "out" / f"{cmd}.json").read_text())
    if cmd == "rank":
        assert "reliability warning(s)" in res.output
        assert any("N=20 <= D=1000" in w for w in record["models"][0]["warnings"]["h_score"])
    elif cmd == "probe":
        assert any("16 training samples for 1000 dimensions" in w for w in record["warnings"])
        assert any("N <= D" in w for w in record["warnings"])
    else:
        assert any("N <= D" in w for w in record["layers"][0]["warnings"])


# =============================================================================== 8. non-contiguous / string labels
@pytest.mark.parametrize("kind", ["gaps", "strings"])
def test_label_encoding_metrics(kind):
    x, y = planted()
    labels = np.array([0, 3, 7, 9])[y] if kind == "gaps" else np.array(list("abcd"))[y]
    phrase = "have no sample" if kind == "gaps" else "encode_labels"
    for fn in COLLAPSE.values():
        with pytest.raises(InputError, match=phrase):
            fn(x, labels)
    for name in LABELLED:
        with pytest.raises(InputError, match="encode_labels"):
            score(name, x, labels)
    if kind == "gaps":  # few-shot episodes draw among the classes present
        assert 0 <= few_shot_eval(x, labels, n_way=2, k_shot=1, n_query=1, n_episodes=5).mean <= 1


@pytest.mark.parametrize("kind", ["gaps", "strings"])
def test_label_encoding_probe(kind):
    x, y = planted()
    labels = np.array([0, 3, 7, 9])[y] if kind == "gaps" else np.array(list("abcd"))[y]
    with pytest.raises(InputError, match="encode_labels"):
        fit_ridge_probe(x, labels)


@pytest.mark.parametrize("kind,names", [("gaps", ["0", "3", "7", "9"]), ("strings", ["a", "b", "c", "d"])])
def test_label_encoding_data(kind, names, tmp_path):
    x, y = planted()
    labels = np.array([0, 3, 7, 9])[y] if kind == "gaps" else np.array(names)[y]
    ds = load_data(npz(tmp_path / "l.npz", x, labels))
    assert ds.class_names == names and sorted(set(ds.labels.tolist())) == [0, 1, 2, 3]
    assert [ds.class_names[c] for c in ds.labels] == [str(v) for v in labels]


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry"])
def test_label_encoding_cli(cmd, tmp_path):
    x, y = planted()
    res = cli(command(cmd, npz(tmp_path / "s.npz", x, np.array(list("abcd"))[y]), tmp_path / "out"))
    assert res.exit_code == 0, res.output


# ======================================================================================== 9. huge K
def test_huge_k_metrics():
    x, _ = planted()
    half = np.arange(40) % 20  # K = N/2: two samples per class
    for fn in COLLAPSE.values():
        value, msgs = caught_warnings(fn, x, half)
        assert any("fewer than 5 samples" in m for m in msgs)
    for name in LABELLED:
        res = score(name, x, half)
        assert np.isfinite(res.value) and any("fewer than 5 samples" in w for w in res.warnings), name
    every = np.arange(40)  # K = N: one sample per class
    with pytest.raises(InputError, match="have fewer than 2 samples"):
        nc1(x, every)
    with pytest.raises(InputError, match="have fewer than 2 samples"):
        compute_score("logme", x, every)
    with pytest.raises(InputError, match="have no sample"):  # K > N
        nc1(x, half, n_classes=100)


def test_huge_k_probe():
    x, _ = planted()
    probe, _ = fit_ridge_probe(x, np.arange(40) % 20)
    assert probe.coef.shape == (8, 20)
    with pytest.raises(InputError, match="have fewer than 2 samples"):
        fit_ridge_probe(x, np.arange(40))
    with pytest.raises(InputError, match="have no sample"):
        fit_ridge_probe(x, np.arange(40) % 20, n_classes=100)


@pytest.mark.parametrize("cmd,ok,phrase", [
    ("rank", True, "reliability warning(s)"),
    ("geometry", True, "record:"),
    ("probe", False, "probing needs >= 2 classes with >= 2 training samples"),
])
def test_huge_k_cli(cmd, ok, phrase, tmp_path):
    x, _ = planted()
    args = command(cmd, npz(tmp_path / "k.npz", x, np.arange(40) % 20), tmp_path / "out")
    if ok:
        res = cli(args)
        assert res.exit_code == 0 and phrase in res.output, res.output
    else:
        cli_fails(args, 1, phrase, tmp_path / "out")


# ================================================================================== 10. corrupt images
@pytest.mark.parametrize("bad", [b"", b"\x89PNG\r\n\x1a\n garbage"], ids=["zero-byte", "garbage"])
def test_corrupt_image_data(bad, tmp_path):
    from transferlens.data import on_bad_file

    data = image_folder(tmp_path / "imgs", {"bad.png": bad})
    ds = load_data(data)  # default: skipped and counted (tests/reliability/test_bad_files.py)
    assert len(ds) == 8 and ds.info["skipped"]["count"] == 1
    with on_bad_file("error"), pytest.raises(DataError, match=r"1 bad files of 9 \(a/bad\.png: unreadable image.*fix or remove"):
        load_data(data)
    (tmp_path / "imgs" / "a" / "0.png").write_bytes(bad)  # damaged after listing: reading it fails
    with pytest.raises(DataError, match=r"unreadable image .*0\.png.*fix or remove the file"):
        ds.images(np.arange(len(ds)), ImageSpec(8, 1))


def test_corrupt_image_extract(tmp_path):
    from transferlens.data import on_bad_file

    data = image_folder(tmp_path / "imgs", {"bad.png": b""})
    with on_bad_file("error"), pytest.raises(DataError, match=r"bad\.png: unreadable image"):
        extract("zoo:vgg-g50-s16", data, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.safetensors"))  # nothing cached


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract", "finetune"])
def test_corrupt_image_cli(cmd, tmp_path):
    data = image_folder(tmp_path / "imgs", {"bad.png": b""})
    cli_fails(command(cmd, data, tmp_path / "out", model="zoo:vgg-g50-s16") + ["--on-bad-file", "error"], 1, "bad.png", tmp_path / "out")


# ============================================================================== 11. truncated checkpoints
def test_truncated_checkpoint_models(tmp_path):
    trunc = truncated_weights(tmp_path)
    with pytest.raises(ModelError, match="cannot read weights .*truncated or not a checkpoint"):
        resolve_model(f"file:{trunc}?arch={MODEL}").load()
    with pytest.raises(ModelError, match="cannot read weights .*truncated or not a checkpoint"):
        resolve_model(f"file:{trunc}?arch=timm:resnet18").load()
    pt = tmp_path / "truncated.pt"
    pt.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(ModelError, match="is not a TorchScript file"):
        resolve_model(f"file:{pt}").load()
    with pytest.raises(ModelError, match="cannot read weights"):
        resolve_model(f"file:{pt}?arch={MODEL}").load()
    with pytest.raises(ModelError, match="cannot read weights"):
        resolve_model(f"timm:resnet18?weights={trunc}").load()


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract", "finetune"])
def test_truncated_checkpoint_cli(cmd, tmp_path):
    model = f"file:{truncated_weights(tmp_path)}?arch={MODEL}"
    cli_fails(command(cmd, DIGITS, tmp_path / "out", model=model), 1, "cannot read weights", tmp_path / "out")


# ============================================================================ 12. corrupt feature cache entry
@pytest.mark.parametrize("damage", ["truncated", "zero-byte", "flipped-byte", "garbage"])
def test_corrupt_cache_entry_is_rebuilt(damage, tmp_path):
    cache = tmp_path / "cache"
    first = extract(MODEL, DIGITS, "all", cache_dir=cache)
    (entry,) = cache.glob("*.safetensors")
    good = entry.read_bytes()
    bad = {"truncated": good[: len(good) // 2], "zero-byte": b"", "garbage": b"\x00garbage" * 100,
           "flipped-byte": good[:-10] + bytes([good[-10] ^ 0xFF]) + good[-9:]}[damage]
    entry.write_bytes(bad)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transferlens")
    logger.addHandler(handler)
    try:
        rebuilt = extract(MODEL, DIGITS, "all", cache_dir=cache)
    finally:
        logger.removeHandler(handler)
    assert rebuilt.provenance["cache"] == "miss"  # detected, recomputed, never used
    assert any("is corrupt" in r.getMessage() and "Rebuilding" in r.getMessage() for r in records)
    for layer in first.layers:
        np.testing.assert_array_equal(rebuilt[layer], first[layer])
    assert extract(MODEL, DIGITS, "all", cache_dir=cache).provenance["cache"] == "hit"  # the entry is good again


def test_corrupt_cache_entry_load(tmp_path):
    path = tmp_path / "f.safetensors"
    FeatureSet({"x": np.ones((3, 2), np.float32)}, np.arange(3), ["a", "b", "c"]).save(path)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CacheError, match="is corrupt"):
        FeatureSet.load(path)
    with pytest.raises(CacheError, match="does not exist"):
        FeatureSet.load(tmp_path / "missing.safetensors")


# ============================================================================= 13. unknown URI schemes
def test_unknown_scheme_uris():
    with pytest.raises(UsageError, match="unknown data source scheme 'nosuch'.*known schemes: builtin"):
        load_data("nosuch:x")
    with pytest.raises(UsageError, match="not a URI of the form scheme:name"):
        load_data("digits")
    with pytest.raises(UsageError, match="unknown model scheme 'nosuch'.*known schemes: file"):
        resolve_model("nosuch:x")
    with pytest.raises(UsageError, match="not a URI of the form scheme:name"):
        resolve_model("resnet18")


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract", "finetune"])
@pytest.mark.parametrize("which", ["data", "model"])
def test_unknown_scheme_cli(cmd, which, tmp_path):
    data, model = ("nosuch:x", MODEL) if which == "data" else (DIGITS, "nosuch:x")
    # rank keeps per-model errors; when no candidate is left it fails with exit code 1
    code = 1 if (cmd == "rank" and which == "model") else 2
    cli_fails(command(cmd, data, tmp_path / "out", model=model), code, f"unknown {'data source' if which == 'data' else 'model'} scheme 'nosuch'",
              tmp_path / "out")


def test_unknown_scheme_cli_process(tmp_path):
    """The installed command itself (not CliRunner): one line on stderr, exit code 2, no traceback."""
    import subprocess
    import sys

    script = Path(sys.executable).parent / "transferlens"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "transferlens.cli.main"]
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # a malformed value in the caller's shell makes libgomp print to stderr
    proc = subprocess.run(cmd + ["extract", "-m", MODEL, "-d", "nosuch:x", "-o", str(out / "f.npz")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: unknown data source scheme 'nosuch' in 'nosuch:x'; known schemes: builtin, csv, imagefolder, npz, shift."]
    assert "Traceback" not in proc.stdout + proc.stderr and not out.exists()


# ========================================================================== 14. unknown model / data names
def test_unknown_names_data(tmp_path):
    with pytest.raises(UsageError, match="unknown built-in data 'nosuch'; available: fashion-mnist"):
        load_data("builtin:nosuch")
    with pytest.raises(DataError, match="no such folder"):
        load_data(f"imagefolder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="no such file"):
        load_data(f"npz:{tmp_path / 'missing.npz'}")
    with pytest.raises(UsageError, match="unknown shift 'nosuch'"):
        load_data("shift:nosuch:3:builtin:digits-uci")


def test_unknown_names_models(tmp_path):
    with pytest.raises(UsageError, match="no zoo model 'nosuch'"):
        resolve_model("zoo:nosuch")
    with pytest.raises(UsageError, match="torchvision has no model 'nosuch'"):
        resolve_model("torchvision:nosuch")
    ref = resolve_model("timm:nosuch_model?pretrained=false")  # timm names are checked when loading
    with pytest.raises(UsageError, match="timm has no model 'nosuch_model'"):
        ref.load()
    with pytest.raises(ModelError, match="no such file"):
        resolve_model(f"file:{tmp_path / 'missing.pt'}")
    with pytest.raises(ModelError, match="weights file .*missing.safetensors does not exist"):
        resolve_model(f"timm:resnet18?weights={tmp_path / 'missing.safetensors'}")


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract", "finetune"])
@pytest.mark.parametrize("which", ["data", "zoo", "timm"])
def test_unknown_names_cli(cmd, which, tmp_path):
    data, model, phrase = {
        "data": ("builtin:nosuch", MODEL, "unknown built-in data 'nosuch'"),
        "zoo": (DIGITS, "zoo:nosuch", "no zoo model 'nosuch'"),
        "timm": (DIGITS, "timm:nosuch_model?pretrained=false", "timm has no model 'nosuch_model'"),
    }[which]
    code = 1 if (cmd == "rank" and which != "data") else 2  # rank: "no candidate could be scored: <model>: <why>"
    cli_fails(command(cmd, data, tmp_path / "out", model=model), code, phrase, tmp_path / "out")


def test_unknown_names_cli_rank_keeps_the_others(tmp_path):
    """One unknown model among good ones is recorded with its error; the others are ranked."""
    import json

    res = cli(["rank", "-d", DIGITS, "-m", MODEL, "-m", "zoo:nosuch", "--scores", "logme,knn_accuracy", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "rank.json").read_text())
    assert record["recommended"] == MODEL
    assert [r["model"] for r in record["models"] if r["error"]] == ["zoo:nosuch"]


# ============================================================================ 15. unwritable output directory
@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract", "finetune"])
def test_unwritable_out_cli(cmd, tmp_path):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a directory")
    out = blocker / "sub"  # a file where a directory is needed: unwritable even for root
    res = cli(command(cmd, DIGITS, out, model=MODEL))
    assert res.exit_code == 1, res.output
    assert "somefile.txt is a file, not a directory; choose another --out" in res.output
    assert blocker.read_text() == "not a directory" and sorted(tmp_path.iterdir()) == [blocker]


def test_unwritable_out_api(tmp_path):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("x")
    fs = FeatureSet({"x": np.ones((3, 2), np.float32)}, np.arange(3), ["a", "b", "c"])
    with pytest.raises(CacheError, match="cannot create directory .*somefile.txt/sub"):
        fs.save(blocker / "sub" / "f.safetensors")
    with pytest.raises(CacheError, match="cannot create directory .*somefile.txt/sub"):
        extract(MODEL, DIGITS, "penultimate", cache_dir=blocker / "sub")
    assert sorted(tmp_path.iterdir()) == [blocker]
