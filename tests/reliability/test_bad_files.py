"""Issue 17, items 1, 4 and 7: a decision tool must not silently answer the wrong question.

1. ``imagefolder:DIR`` laid out as ``DIR/{train,val,test}/<class>/`` reads the split folder named by
   ``split=`` (never a task "test" vs "train"); without ``split=`` it is refused with the URIs to use; a class
   folder holding image sub-folders is an error; a flat folder keeps its stratified ``split=`` semantics.
4. Unreadable images, non-image files and CSV rows with an empty label or text are skipped, warned about and
   counted in the records (``--on-bad-file skip``, the default), or stop the run (``--on-bad-file error``);
   skipping equals deleting the files (same samples, same split) but is part of the source's identity.
7. A mistyped ``zoo:`` name suggests the close names instead of ``zoo build``.

Rows in docs/bad_inputs.md.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from transferlens.cli.main import app
from transferlens.data import load_data, on_bad_file
from transferlens.data.base import ImageSpec
from transferlens.errors import DataError, UsageError
from transferlens.features import extract
from transferlens.models import resolve_model

runner = CliRunner()
MODEL = "zoo:mlp-g50-s16"  # shipped, offline, loads in well under a second


def _images(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")


def split_tree(root: Path, splits: dict[str, int], classes=("cat", "dog")) -> Path:
    """``root/<split>/<class>/<i>.png`` with ``splits[split]`` images per class."""
    for s, n in splits.items():
        for c, name in enumerate(classes):
            _images(root / s / name, n, seed=hash((s, c)) % 1000)
    return root


def flat_tree(root: Path, n: int = 4, classes=("a", "b")) -> Path:
    for c, name in enumerate(classes):
        _images(root / name, n, seed=c)
    return root


def _pixels(ds) -> np.ndarray:
    return np.stack(ds.raw(np.arange(len(ds))))


def cli(args: list[str]):
    res = runner.invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    return res


# ============================================================================ 1. train/test sub-trees
def test_split_layout_without_split_is_refused_with_the_uris(tmp_path):
    root = split_tree(tmp_path / "pets", {"train": 3, "test": 2})
    for uri in (f"imagefolder:{root}", f"imagefolder:{root}?split=all&n_per_class=2"):
        with pytest.raises(UsageError) as info:
            load_data(uri)
        msg = str(info.value)
        assert "holds split folders (train/, test/)" in msg
        suffix = "&n_per_class=2" if "n_per_class" in uri else ""
        assert f"imagefolder:{root}?{'n_per_class=2&' if suffix else ''}split=train" in msg  # canonical: sorted params
        assert f"imagefolder:{root}?{'n_per_class=2&' if suffix else ''}split=test" in msg


def test_split_layout_reads_the_split_folder_with_the_real_classes(tmp_path):
    root = split_tree(tmp_path / "pets", {"train": 3, "test": 2, "val": 1})
    train, test, val = (load_data(f"imagefolder:{root}?split={s}") for s in ("train", "test", "val"))
    for ds, n in ((train, 3), (test, 2), (val, 1)):
        assert ds.class_names == ["cat", "dog"]  # never ['test', 'train', 'val']
        assert ds.class_counts().tolist() == [n, n]
    assert np.array_equal(_pixels(train)[:3], np.stack([np.asarray(Image.open(root / "train" / "cat" / f"{i}.png")) for i in range(3)]))
    assert np.array_equal(_pixels(test)[2:], np.stack([np.asarray(Image.open(root / "test" / "dog" / f"{i}.png")) for i in range(2)]))
    assert len({train.fingerprint, test.fingerprint, val.fingerprint}) == 3  # distinct identities (cache keys)
    sub = load_data(f"imagefolder:{root}?split=train&n_per_class=2&classes=dog")  # the other selections still apply
    assert sub.class_names == ["dog"] and len(sub) == 2


def test_split_layout_errors(tmp_path):
    root = split_tree(tmp_path / "pets", {"train": 3, "test": 2})
    with pytest.raises(UsageError, match=r"has no val/ split folder; its splits are train, test\."):
        load_data(f"imagefolder:{root}?split=val")
    with pytest.raises(UsageError, match=r"test_fraction and split_seed apply to a flat folder: drop them"):
        load_data(f"imagefolder:{root}?split=train&test_fraction=0.5")
    _images(root / "test" / "bird", 2, seed=9)
    _images(root / "val" / "cat", 1, seed=8)
    with pytest.raises(DataError, match=r"split folders hold different classes \(train/ lacks bird; val/ lacks bird, dog\)"):
        load_data(f"imagefolder:{root}?split=train")


def test_class_folder_with_image_subfolders_is_an_error(tmp_path):
    root = flat_tree(tmp_path / "pets")
    _images(tmp_path / "pets" / "b" / "2019", 2, seed=5)
    with pytest.raises(DataError, match=r"class folder b/ holds sub-folders with images \(2019\)"):
        load_data(f"imagefolder:{root}")
    # the split tree one level down: the class "data" would hold train/ and test/, pointed at with split=
    nested = split_tree(tmp_path / "outer" / "data", {"train": 2, "test": 2}).parent
    with pytest.raises(DataError, match=r"class folder data/ holds sub-folders with images \(test, train\).*"
                                        rf"imagefolder:{nested / 'data'}\?split=train"):
        load_data(f"imagefolder:{nested}")


def test_flat_folder_split_semantics_unchanged(tmp_path):
    """``split=train|test`` on a flat folder: the stratified split of base.stratified_split (round(0.25 * 8) = 2 per class)."""
    root = flat_tree(tmp_path / "pets", n=8)
    full = load_data(f"imagefolder:{root}")
    train, test = load_data(f"imagefolder:{root}?split=train"), load_data(f"imagefolder:{root}?split=test")
    assert full.class_names == train.class_names == ["a", "b"]
    assert test.class_counts().tolist() == [2, 2] and train.class_counts().tolist() == [6, 6]
    assert sorted(train.ids.tolist() + test.ids.tolist()) == list(range(16))
    assert train.fingerprint == test.fingerprint == full.fingerprint


def test_split_layout_cli_refusal(tmp_path):
    root = split_tree(tmp_path / "pets", {"train": 3, "test": 2})
    res = cli(["data", "show", f"imagefolder:{root}"])
    assert res.exit_code == 2 and f"imagefolder:{root}?split=train" in res.output, res.output
    res = cli(["data", "show", f"imagefolder:{root}?split=train"])
    assert res.exit_code == 0 and "2 classes" in res.output and "cat" in res.output, res.output


# =============================================================================== 4. rows changed silently
def bad_folder(root: Path) -> Path:
    """Classes a, b of 4 good 8x8 PNGs each, plus in a/: a zero-byte PNG, a garbage PNG, a truncated PNG and a
    text file; a hidden .DS_Store (ignored, not counted)."""
    flat_tree(root)
    good = (root / "a" / "0.png").read_bytes()
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_bad_images_are_skipped_and_counted(tmp_path, caplog):
    root = bad_folder(tmp_path / "imgs")
    with caplog.at_level("WARNING", logger="transferlens"):
        ds = load_data(f"imagefolder:{root}")
    sk = ds.info["skipped"]
    assert len(ds) == 8 and ds.class_counts().tolist() == [4, 4]
    assert sk["count"] == 4 and sk["total"] == 12
    assert [e.split(":")[0] for e in sk["examples"]] == ["a/empty.png", "a/garbage.png", "a/notes.txt", "a/truncated.png"]
    assert "not an image file" in sk["examples"][2] and all("unreadable image" in e for i, e in enumerate(sk["examples"]) if i != 2)
    assert _pixels(ds).shape == (8, 8, 8)  # every kept file decodes
    # skipping == deleting the bad files: same samples, same split; but a different identity (cache keys)
    clean = tmp_path / "clean"
    shutil.copytree(root, clean)
    for name in ("empty.png", "garbage.png", "truncated.png", "notes.txt"):
        (clean / "a" / name).unlink()
    for q in ("", "?split=test&test_fraction=0.5"):
        a, b = load_data(f"imagefolder:{root}{q}"), load_data(f"imagefolder:{clean}{q}")
        assert np.array_equal(_pixels(a), _pixels(b)) and np.array_equal(a.labels, b.labels)
    assert ds.fingerprint != load_data(f"imagefolder:{clean}").fingerprint
    assert ds.fingerprint == load_data(f"imagefolder:{root}").fingerprint  # deterministic
    warned = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warned) == 1 and "skipped 4 of 12 files (a/empty.png" in warned[0]


def test_bad_images_error_policy(tmp_path):
    root = bad_folder(tmp_path / "imgs")
    with on_bad_file("error"), pytest.raises(DataError, match=r"4 bad files of 12 \(a/empty\.png: unreadable image.*--on-bad-file skip"):
        load_data(f"imagefolder:{root}")
    with pytest.raises(UsageError, match="--on-bad-file must be skip or error, got 'ignore'"):
        with on_bad_file("ignore"):
            pass


def test_only_bad_images_in_a_class(tmp_path):
    root = flat_tree(tmp_path / "imgs")
    for f in (root / "b").iterdir():
        f.write_bytes(b"")
    with pytest.raises(DataError, match=r"class folder\(s\) b hold no readable images \(4 file\(s\) were skipped"):
        load_data(f"imagefolder:{root}")


def test_csv_empty_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows([["good one", "x"], ["", "x"], ["good two", ""], ["   ", "y"], ["good three", "y"], ["good four", " y "]])
        fh.write("short row\n")
    ds = load_data(f"csv:{path}")
    assert ds.texts(np.arange(len(ds))) == ["good one", "good three", "good four"]
    assert ds.class_names == ["x", "y"] and ds.labels.tolist() == [0, 1, 1]
    assert ds.info["skipped"] == {"count": 4, "total": 7, "examples": [
        "line 3: empty text", "line 4: empty label", "line 5: empty text", "line 8: missing fields"]}
    with on_bad_file("error"), pytest.raises(DataError, match=r"csv:.*: 4 bad rows of 7 \(line 3: empty text; line 4: empty label"):
        load_data(f"csv:{path}")


def test_extract_after_skipping(tmp_path):
    """Features of the kept images only; the skipped set is in the cache identity (a clean copy is a miss)."""
    root = bad_folder(tmp_path / "imgs")
    fs = extract(MODEL, f"imagefolder:{root}", "penultimate", cache_dir=tmp_path / "cache")
    assert fs.n_samples == 8 and fs.labels.tolist() == [0] * 4 + [1] * 4
    again = extract(MODEL, f"imagefolder:{root}", "penultimate", cache_dir=tmp_path / "cache")
    assert again.provenance["cache"] == "hit"
    (root / "a" / "notes.txt").unlink()  # one bad file fewer: the same 8 images, another source state
    other = extract(MODEL, f"imagefolder:{root}", "penultimate", cache_dir=tmp_path / "cache")
    assert other.provenance["cache"] == "miss"
    assert np.array_equal(other[other.layers[0]], fs[fs.layers[0]])


@pytest.mark.parametrize("cmd", ["rank", "probe", "geometry", "extract", "finetune"])
def test_cli_records_the_skipped_files(cmd, tmp_path):
    root = bad_folder(tmp_path / "imgs")
    data, out = f"imagefolder:{root}", tmp_path / "out"
    args = {
        "rank": ["rank", "-d", data, "-m", MODEL, "--scores", "logme", "-o", str(out)],
        "probe": ["probe", "-m", MODEL, "-d", data, "--layers", "penultimate", "--test-fraction", "0.5", "-o", str(out)],
        "geometry": ["geometry", "-m", MODEL, "-d", data, "--layers", "penultimate", "--gc-samples", "0", "--episodes", "5",
                     "--ways", "2", "--shots", "1", "-o", str(out)],
        "extract": ["extract", "-m", MODEL, "-d", data, "--layers", "penultimate", "-o", str(out / "f.safetensors")],
        "finetune": ["finetune", "-m", MODEL, "-d", data, "--epochs", "1", "-o", str(out)],
    }[cmd]
    res = cli(args)
    assert res.exit_code == 0, res.output
    assert "skipped 4 of 12 files (a/empty.png" in res.output  # the warning line on the terminal
    if cmd == "extract":
        from transferlens.features import FeatureSet

        skipped = FeatureSet.load(out / "f.safetensors").provenance["data_skipped"]
    elif cmd != "finetune":  # finetune: the warning line only (its record is written by the training loop)
        skipped = json.loads((out / f"{cmd}.json").read_text())["data_skipped"]
    if cmd != "finetune":
        assert skipped[data]["count"] == 4 and skipped[data]["total"] == 12
        assert skipped[data]["examples"][0].startswith("a/empty.png: unreadable image")
    res = cli([*args, "--on-bad-file", "error"])
    assert res.exit_code == 1 and "error: imagefolder:" in res.output and "4 bad files of 12" in res.output, res.output


def test_assess_reports_skipped_files_not_a_model_failure(tmp_path):
    root = bad_folder(tmp_path / "imgs")
    for cls in ("a", "b"):
        _images(root / cls, 8, seed=ord(cls))  # 8 good images per class (overwrites 0-3)
    base = ["assess", "-d", f"imagefolder:{root}", "-m", MODEL, "--top", "1", "--gc-samples", "0", "--scores", "logme"]
    res = cli([*base, "-o", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "run" / "assess.json").read_text())
    assert run["decision"]["model"] == MODEL
    data = json.loads((tmp_path / "run" / run["records"]["data"]).read_text())["result"]
    assert data["train"]["skipped"]["count"] == 4 and data["train"]["n"] == 16
    rank = json.loads((tmp_path / "run" / run["records"]["rank"]).read_text())["result"]
    assert all(r["error"] is None for r in rank["models"])
    caveats = " ".join(run["decision"]["caveats"])
    assert "4 of 20 files or rows of imagefolder:" in caveats and "could not be scored" not in caveats
    assert "4 of 20 files or rows" in (tmp_path / "run" / "report.html").read_text()
    res = cli([*base, "-o", str(tmp_path / "run2"), "--on-bad-file", "error"])
    assert res.exit_code == 1
    run = json.loads((tmp_path / "run2" / "assess.json").read_text())
    caveats = " ".join(run["decision"]["caveats"])
    assert "Stage data failed" in caveats and "4 bad files of 20" in caveats and "could not be scored" not in caveats


# =================================================================================== 7. wrong hints
def test_mistyped_zoo_name_suggests_close_names():
    with pytest.raises(UsageError) as info:
        resolve_model("zoo:vgg-g5O")
    assert str(info.value).startswith("no zoo model 'vgg-g5O'; did you mean 'vgg-g50'") and "zoo build" not in str(info.value)
    with pytest.raises(UsageError, match=r"no zoo model 'vit_g50'; did you mean 'vit-g50'\?$"):
        resolve_model("zoo:vit_g50")
    with pytest.raises(UsageError) as info:
        resolve_model("zoo:nosuch")
    assert "(built: mlp-g50-s16," in str(info.value) and "zoo list --recipes" in str(info.value) and "zoo build" not in str(info.value)


def test_recipe_not_built_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLENS_HOME", str(tmp_path))  # an empty home: the tiny recipes are not built
    with pytest.raises(UsageError, match=r"zoo model 'tiny-vgg' is not built yet; build it with `transferlens zoo build --tiny`"):
        resolve_model("zoo:tiny-vgg")
    assert resolve_model("zoo:vgg-g50").uri == "zoo:vgg-g50"  # shipped


def test_mistyped_zoo_name_cli(tmp_path):
    res = cli(["extract", "-m", "zoo:vgg-g5O", "-d", "builtin:digits-uci?n_per_class=2"])
    assert res.exit_code == 2 and "did you mean 'vgg-g50'" in res.output and "zoo build" not in res.output, res.output
