"""The target suite of issue 18 (zoo/suite.py): size, the original targets kept, groups that keep shared data together."""

from __future__ import annotations

import re

import pytest

from transferlens.data.shifts import CORRUPTIONS
from transferlens.errors import UsageError
from transferlens.zoo import suite
from transferlens.zoo.targets import TARGETS


def _base(uri: str) -> str:
    """The data set under a URI: shift prefixes and split / size / class parameters removed."""
    while uri.startswith("shift:"):
        uri = uri.split(":", 3)[3]
    path, _, query = uri.partition("?")
    keep = [p for p in query.split("&") if p and not re.match(r"(split|n_per_class|classes)=", p)]
    return path + ("?" + "&".join(keep) if keep else "")


def test_suite_size_and_originals():
    s = suite.SUITE
    assert sum(t.modality == "image" for t in s.values()) >= 30 and sum(t.modality == "text" for t in s.values()) >= 6
    for name, t in TARGETS.items():  # the eight targets, unchanged
        assert (s[name].train, s[name].test, s[name].ood, s[name].kind) == (t.train, t.test, t.ood, t.kind)
    assert suite.build_suite() == s  # deterministic


def test_every_corruption_at_two_severities_and_few_shot_levels():
    s = suite.SUITE
    for c in CORRUPTIONS:
        got = sorted(t.name for t in s.values() if t.train.startswith(f"shift:{c}:"))
        assert len(got) == 2 and all(s[n].test.startswith(f"shift:{c}:") for n in got)
    shots = {int(m.group(1)) for t in s.values() if t.modality == "image" and t.name.startswith("digits")
             and not t.train.startswith("shift:") and (m := re.search(r"n_per_class=(\d+)", t.train)) and "classes" not in t.train}
    assert {5, 10, 20, 50, 100} <= shots


def test_targets_sharing_a_base_data_set_share_a_group():
    """Grouped CV must never split targets drawn from one data set (e.g. one test set)."""
    by_base: dict[str, set[str]] = {}
    for t in suite.SUITE.values():
        by_base.setdefault(_base(t.test), set()).add(t.group)
    assert all(len(groups) == 1 for groups in by_base.values()), by_base
    assert all(t.group for t in suite.SUITE.values())
    assert suite.group_of("digits-10shot") == suite.group_of("digits") and suite.group_of("nope") == "nope"


def test_lookup():
    assert suite.lookup_target("digits") is TARGETS["digits"] and suite.lookup_target("greek-25").group == "greek"
    with pytest.raises(UsageError, match="unknown target"):
        suite.lookup_target("no-such-target")


def test_evaluate_cli_rejects_bad_suite_options():
    from typer.testing import CliRunner

    from transferlens.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["zoo", "evaluate", "--suite", "--target", "digits"])
    assert res.exit_code != 0 and "either --suite or --target" in res.output
    res = runner.invoke(app, ["zoo", "evaluate", "--suite", "--finetune-lrs", "fast"])
    assert res.exit_code != 0 and "--finetune-lrs must be comma-separated numbers" in res.output
