"""The public API: short import paths, ``__all__``, docstrings with a formula or contract and an example that
runs, ``help(transferlens)`` listing it, and ``import transferlens`` staying free of torch."""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys

import pytest

import transferlens as tl

PACKAGES = ["transferlens", "transferlens.metrics", "transferlens.geometry", "transferlens.probe", "transferlens.finetune"]
# the functions a user calls first: each docstring has a runnable example
HEADLINE = ["extract", "rank_models", "probe_layers", "compute_score", "list_scores", "nc1", "gc_exact", "FTPAdamW"]


def test_import_is_cheap_and_help_lists_the_api() -> None:
    code = ("import sys, pydoc, transferlens as tl\n"
            "print(sorted(m for m in ('torch', 'numpy', 'sklearn', 'transformers') if m in sys.modules))\n"
            "print(pydoc.render_doc(tl, renderer=pydoc.plaintext))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    first, text = res.stdout.split("\n", 1)
    assert first == "[]"  # `import transferlens` imports none of them; help() then loads the names it lists
    for name in HEADLINE + ["run_finetune", "neural_collapse", "geometric_complexity", "load_data", "resolve_model"]:
        assert f"\n    {name}(" in text or f"\n    class {name}(" in text, name
    assert "assess(models, data, out)" in text  # the package docstring names the callable assess


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve_and_are_documented(package: str) -> None:
    mod = importlib.import_module(package)
    assert mod.__all__ and len(set(mod.__all__)) == len(mod.__all__)
    assert set(mod.__all__) <= set(dir(mod))
    for name in mod.__all__:
        obj = getattr(mod, name)
        if callable(obj):
            assert (inspect.getdoc(obj) or "").strip(), f"{package}.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mod.nope  # noqa: B018


def test_short_paths_are_the_same_objects() -> None:
    from transferlens.features import extract
    from transferlens.finetune.optim import FTPAdamW
    from transferlens.metrics.scores import compute_score
    from transferlens.probe.analysis import probe_layers
    from transferlens.ranking import rank_models

    assert tl.extract is extract and tl.rank_models is rank_models and tl.probe_layers is probe_layers
    assert tl.compute_score is compute_score and tl.metrics.compute_score is compute_score and tl.FTPAdamW is FTPAdamW
    assert tl.finetune.FTPAdamW is FTPAdamW and tl.probe.probe_layers is probe_layers


def test_assess_is_callable_and_still_a_package() -> None:
    import transferlens.assess as pkg
    from transferlens.assess import assess
    from transferlens.assess.workflow import assess as workflow_assess

    assert tl.assess is pkg and callable(tl.assess) and assess is workflow_assess
    assert tl.assess.workflow.assess is workflow_assess  # dotted paths (monkeypatch targets) still resolve


@pytest.mark.usefixtures("one_torch_thread")
def test_docstring_examples_run(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for p in PACKAGES for t in finder.find(importlib.import_module(p))]
    for name in HEADLINE + ["assess"]:
        obj = getattr(tl.assess, "assess") if name == "assess" else getattr(tl, name)
        tests += finder.find(obj, name, globs=vars(sys.modules[obj.__module__]).copy())
    with_examples = {t.name for t in tests if t.examples}
    assert set(HEADLINE + ["assess"] + PACKAGES) <= with_examples
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted >= 40
