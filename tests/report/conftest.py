"""One tiny ``assess`` run shared by the report tests: 3 zoo models + 1 that does not exist, 100 ID samples of
5 digit classes, one usable OOD set and one whose classes the ID data lacks, 2 models probed, fine-tuning on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

TRAIN = "builtin:digits?split=train&classes=0-4&n_per_class=20"
TEST = "builtin:digits?split=test&classes=0-4&n_per_class=10"
OOD_OK = "shift:blur:3:builtin:digits?split=test&classes=0-4&n_per_class=10"
OOD_BAD = "builtin:digits-uci?split=test&n_per_class=5"  # ten classes: 5-9 are not in the ID data
MODELS = ["zoo:vgg-g50-s16", "zoo:mlp-g50-s16", "zoo:vgg-g50", "zoo:no-such-model"]  # small and fast
TOP_K = 2


def finetune_available() -> bool:
    try:
        import transferlens.finetune.loop  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from transferlens.assess import assess

    out = tmp_path_factory.mktemp("assess-run")
    events: list[tuple[str, str, str]] = []
    run = assess(MODELS, TRAIN, out, test=TEST, ood=[OOD_OK, OOD_BAD], top_k=TOP_K, finetune=True, finetune_epochs=2, gc_samples=16,
                 on_event=lambda *e: events.append(e))
    run["events"] = events
    return run


@pytest.fixture(scope="session")
def spec() -> SimpleNamespace:
    """The tiny run's inputs (test modules are not importable packages, so they come as a fixture)."""
    return SimpleNamespace(TRAIN=TRAIN, TEST=TEST, OOD_OK=OOD_OK, OOD_BAD=OOD_BAD, MODELS=MODELS, TOP_K=TOP_K,
                           finetune_available=finetune_available())
