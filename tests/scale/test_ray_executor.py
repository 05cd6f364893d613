"""``rank_models(executor="ray")``: one Ray task per model, the feature cache shared on disk, and the
record equal to the local executor's, per-model failures included."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from typer.testing import CliRunner

from transferlens.cli.main import app
from transferlens.errors import TransferLensError, UsageError
from transferlens.executors import TaskFailed, check_executor, map_tasks, worker_env
from transferlens.ranking import rank_models

# Shipped zoo models (offline, small) and one that does not exist: its row carries the error.
MODELS = ["zoo:vgg-g50-s16", "zoo:mlp-g50-s16", "zoo:does-not-exist", "zoo:vgg-g50", "zoo:resnet-g50"]
DATA = "builtin:digits-uci?n_per_class=10"
SCORES = ["logme", "leep", "nce", "h_score", "gbc", "transrate", "ncti", "etran", "knn_accuracy"]


# Ray tasks run torch with 1 thread (num_cpus=1); the in-process comparisons do the same, so that float
# reductions happen in the same order and the records can be compared exactly.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _home(root, name):
    """A fresh TRANSFERLENS_HOME with the session's extracted data linked in."""
    home = root / name
    home.mkdir()
    data = os.path.join(os.environ["TRANSFERLENS_HOME"], "data")
    if os.path.exists(data):
        (home / "data").symlink_to(data, target_is_directory=True)
    return home


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    """A local 2-CPU Ray runtime, started BEFORE the test home is set: workers see that home only
    through the executor's runtime_env. Yields the test home (module scope)."""
    ray = pytest.importorskip("ray")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init took {time.perf_counter() - t0:.1f} s")
    home = _home(tmp_path_factory.mktemp("rayhome"), "home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLENS_HOME", str(home))
        yield home
    ray.shutdown()


def _cache(home) -> dict[str, int]:
    features = home / "features"
    return {p.name: p.stat().st_mtime_ns for p in features.glob("*.safetensors")} if features.exists() else {}


def _assert_same(a: dict, b: dict) -> None:
    """Records equal except wall-clock seconds; scores to 1e-12 (in practice exactly)."""
    assert a["ranking"] == b["ranking"] and a["recommended"] == b["recommended"]
    strip = ("models",)
    assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}
    assert [r["model"] for r in a["models"]] == [r["model"] for r in b["models"]]
    for ra, rb in zip(a["models"], b["models"]):
        assert ra["error"] == rb["error"]
        assert ra["layer"] == rb["layer"] and ra.get("dim") == rb.get("dim")
        assert ra["warnings"] == rb["warnings"] and ra.get("ranks") == rb.get("ranks")
        assert ra["combined_rank"] == rb["combined_rank"]
        assert ra["scores"].keys() == rb["scores"].keys() and ra["seconds"].keys() == rb["seconds"].keys()
        for name, value in ra["scores"].items():
            assert abs(value - rb["scores"][name]) <= 1e-12 * max(1.0, abs(value)), (ra["model"], name)


def test_ray_ranking_equals_local(ray_runtime, tmp_path, monkeypatch):
    home = ray_runtime
    assert _cache(home) == {}
    rec_ray = rank_models(MODELS, DATA, scores=SCORES, executor="ray")
    # the workers wrote their features into the test home (they got it through runtime_env)
    written = _cache(home)
    assert len(written) == len(MODELS) - 1

    failed = [r for r in rec_ray["models"] if r["error"]]
    assert [r["model"] for r in failed] == ["zoo:does-not-exist"] and "no zoo model" in failed[0]["error"]
    assert len(rec_ray["ranking"]) == len(MODELS) - 1 and "zoo:does-not-exist" not in rec_ray["ranking"]
    assert all(set(SCORES) <= set(r["scores"]) for r in rec_ray["models"] if not r["error"])

    # local, from an empty cache of its own: computed independently, same record
    monkeypatch.setenv("TRANSFERLENS_HOME", str(_home(tmp_path, "local")))
    rec_local = rank_models(MODELS, DATA, scores=SCORES, executor="local")
    _assert_same(rec_ray, rec_local)

    # local on the Ray run's home: every entry is a cache hit (the cache is shared on disk), same record
    monkeypatch.setenv("TRANSFERLENS_HOME", str(home))
    _assert_same(rank_models(MODELS, DATA, scores=SCORES), rec_ray)
    assert _cache(home) == written


def test_rank_cli_with_ray(ray_runtime, tmp_path):
    out = tmp_path / "out"
    args = ["rank", "--data", DATA, "--scores", "logme,gbc,knn_accuracy", "--out", str(out), "--executor", "ray"]
    for m in ("zoo:vgg-g50-s16", "zoo:mlp-g50-s16", "timm:not_a_model"):
        args += ["--model", m]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "rank.json").read_text())
    assert len(record["ranking"]) == 2
    assert [r["model"] for r in record["models"] if r["error"]] == ["timm:not_a_model"]


def test_map_tasks_ray_failures_stay_per_item(ray_runtime):
    def crash_on_two(x):  # nested: pickled by value, so the workers need not import this test module
        import os

        if x == 2:
            os._exit(1)  # the worker dies without raising
        if x == 3:
            raise ValueError("three")
        return x * 10

    got = map_tasks(crash_on_two, [1, 2, 3, 4], executor="ray", on_error=lambda item, exc: exc)
    assert got[0] == 10 and got[3] == 40
    assert isinstance(got[1], TaskFailed) and isinstance(got[1], TransferLensError)
    assert isinstance(got[2], ValueError) and str(got[2]) == "three"  # the original exception, not RayTaskError
    with pytest.raises(ValueError, match="three"):
        map_tasks(crash_on_two, [1, 3], executor="ray")


def test_map_tasks_local_order_and_errors():
    assert map_tasks(pow, [2, 3], kwargs={"exp": 2}) == [4, 9]
    assert map_tasks(int, ["1", "x", "3"], on_error=lambda item, exc: type(exc).__name__) == [1, "ValueError", 3]
    with pytest.raises(ValueError):
        map_tasks(int, ["1", "x"])


def test_unknown_executor_and_address_refused():
    with pytest.raises(UsageError, match="local, ray"):
        check_executor("nope")
    with pytest.raises(UsageError, match="--executor ray"):
        check_executor("local", "auto")
    with pytest.raises(UsageError, match="unknown executor"):
        rank_models(MODELS[:1], DATA, executor="dask")
    result = CliRunner().invoke(app, ["rank", "--data", DATA, "--model", MODELS[0], "--executor", "nope"])
    assert result.exit_code == 2 and "unknown executor 'nope'" in result.output and "local, ray" in result.output


def test_missing_ray_is_a_usage_error(monkeypatch):
    from transferlens.executors import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UsageError, match="pip install ray"):
        import_ray()
    with pytest.raises(UsageError, match="pip install ray"):
        map_tasks(str, [1], executor="ray")


def test_worker_env_passes_the_cache_home(monkeypatch):
    monkeypatch.setenv("TRANSFERLENS_HOME", "/some/shared/home")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    env = worker_env()
    assert env["TRANSFERLENS_HOME"] == "/some/shared/home" and "UNRELATED_SECRET" not in env


def test_zoo_evaluate_on_ray_equals_local(ray_runtime, tmp_path, monkeypatch):
    """``evaluate_zoo(executor="ray")``: one task per (model, target) pair, the same unit records as in process."""
    from transferlens.zoo import evaluate
    from transferlens.zoo.evaluate import Protocol
    from transferlens.zoo.targets import Target

    uci = "builtin:digits-uci?classes=0-3"
    target = Target("ray-uci", "cross-domain", "image", f"{uci}&split=train&n_per_class=10", f"{uci}&split=test&n_per_class=6",
                    (f"shift:blur:3:{uci}&split=test&n_per_class=6",), "test target")
    monkeypatch.setitem(evaluate.TARGETS, target.name, target)  # the driver plans; the workers get the Target itself
    protocol = Protocol(seeds=(0, 1), finetune_epochs=1, finetune_lrs=(1e-3,), probe_C=(1.0,))
    models = ["mlp-g50-s16", "vgg-g50-s16"]

    def stable(recs):
        return sorted((json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in recs))

    remote = evaluate.evaluate_zoo(models, [target.name], protocol, root=tmp_path / "ray", executor="ray")
    local = evaluate.evaluate_zoo(models, [target.name], protocol, root=tmp_path / "local")
    assert len(remote) == len(local) == 4
    assert stable(remote) == stable(local)
    assert sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.json")) == \
        sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.json"))


def test_bench_scores_on_ray_equals_local(ray_runtime, tmp_path, monkeypatch):
    """``run_bench(executor="ray")``: one task per target, the same table as in process (the target's train URI
    travels with the task, so targets defined only in the driver work too)."""
    from transferlens.zoo import bench, evaluate
    from transferlens.zoo.evaluate import Protocol
    from transferlens.zoo.targets import Target

    uci = "builtin:digits-uci?classes=0-3"
    targets = [Target(f"ray-{i}", "cross-domain", "image", f"{uci}&split=train&n_per_class={n}", f"{uci}&split=test&n_per_class=6",
                      (), "test target") for i, n in ((0, 10), (1, 12))]
    for t in targets:
        monkeypatch.setitem(evaluate.TARGETS, t.name, t)
        monkeypatch.setitem(bench.TARGETS, t.name, t)
    monkeypatch.setattr(bench, "SELECTION_TARGETS", ("ray-0",))
    monkeypatch.setattr(bench, "REPORT_TARGETS", ("ray-1",))
    protocol = Protocol(seeds=(0,), finetune_epochs=1, finetune_lrs=(1e-3,), probe_C=(1.0,))
    recs = evaluate.evaluate_zoo(["mlp-g50-s16", "vgg-g50-s16", "vgg-g50"], [t.name for t in targets], protocol, root=tmp_path / "gt")
    table = evaluate.ground_truth_table(recs)
    scores = ["logme", "knn_accuracy", "h_score"]
    remote = bench.run_bench(table, scores=scores, cache_dir=tmp_path / "ray-cache", executor="ray")
    local = bench.run_bench(table, scores=scores, cache_dir=tmp_path / "local-cache")
    def same(a, b) -> bool:  # NaN-aware (a metric of a constant ranking is NaN)
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    for t in ("ray-0", "ray-1"):
        assert same(remote["targets"][t]["scores"], local["targets"][t]["scores"])
        assert same(remote["targets"][t]["metrics"], local["targets"][t]["metrics"])
    assert same(remote["combined"], local["combined"]) and remote["combined"]["scores"]
    assert sorted(p.name for p in (tmp_path / "ray-cache").iterdir()) == sorted(p.name for p in (tmp_path / "local-cache").iterdir())


def test_zoo_build_on_ray_equals_local(ray_runtime, tmp_path):
    """``build_zoo(tiny=True, executor="ray")``: one task per recipe, weights bitwise equal to a local build
    with the same (single) torch thread."""
    from safetensors.torch import load_file

    from transferlens.zoo.build import build_zoo

    remote = build_zoo(tiny=True, root=tmp_path / "ray", executor="ray")
    local = build_zoo(tiny=True, root=tmp_path / "local")
    assert [c["name"] for c in remote] == [c["name"] for c in local]
    for card in local:
        a = load_file(str(tmp_path / "ray" / card["name"] / "model.safetensors"))
        b = load_file(str(tmp_path / "local" / card["name"] / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    again = build_zoo(tiny=True, root=tmp_path / "ray", executor="ray")  # nothing left to build: no task, same cards
    assert [c["recipe_fingerprint"] for c in again] == [c["recipe_fingerprint"] for c in remote]


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
