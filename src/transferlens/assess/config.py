"""What one ``transferlens assess`` run does: candidates, target data, stages and their settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from dataclasses import field as _dc_field

from ..defaults import (DEFAULT_ASSESS_SCORES, DEFAULT_FINETUNE_METHODS, DEFAULT_REAL_IMAGE_MODELS, DEFAULT_REAL_IMAGE_SIZE, DEFAULT_TARGET, DEFAULT_TEXT_MODELS,
                        DEFAULT_TOP_K, DEFAULT_ZOO_IMAGE_MODELS)
from ..errors import UsageError


@dataclass
class AssessConfig:
    """Resolved settings of a run; ``to_dict()`` goes into ``assess.json``."""

    models: list[str]
    train: str
    test: str | None = None
    ood: list[str] = field(default_factory=list)
    target: str | None = None
    scores: list[str] = field(default_factory=lambda: list(DEFAULT_ASSESS_SCORES))
    top_k: int = DEFAULT_TOP_K
    pool: str = "avg2x2"  # resolved by make_config (see default_pool)
    probe: str = "ridge"
    seed: int = 0
    shots: tuple[int, ...] = (1, 2, 5, 10, 20)
    gc_samples: int = 64
    finetune: bool = False
    finetune_methods: tuple[str, ...] = DEFAULT_FINETUNE_METHODS
    finetune_epochs: int = 10
    field: str | None = None  # unlabelled deployment data: estimated field accuracy per candidate
    budget: float | None = None  # minutes of successive-halving fine-tuning of the scores' top candidates
    budget_top: int = 4  # how many of the best-ranked candidates the budget stage fine-tunes
    notes: list[str] = _dc_field(default_factory=list)  # e.g. default candidates left out because not installed

    def to_dict(self) -> dict:
        return asdict(self)


def random_init_twin(uri: str) -> str:
    """``torchvision:mobilenet_v2`` -> ``torchvision:mobilenet_v2?pretrained=false`` (same architecture, random weights)."""
    return f"{uri}{'&' if '?' in uri else '?'}pretrained=false"


def default_models(modality: str) -> list[str]:
    """The packaged MiniLM for text. For images: every real ImageNet backbone installed here
    (``DEFAULT_REAL_IMAGE_MODELS``, at ``DEFAULT_REAL_IMAGE_SIZE`` px) followed by its random-init twin, then the best zoo models
    (``DEFAULT_ZOO_IMAGE_MODELS``, those built). Without any packaged backbone, every zoo model (as before)."""
    if modality == "text":
        return list(DEFAULT_TEXT_MODELS)
    from ..models.packaged import PACKAGED, installed_files
    from ..zoo.registry import list_built

    built = list_built()
    real = [m for m in DEFAULT_REAL_IMAGE_MODELS if m in PACKAGED and installed_files(PACKAGED[m]) is not None]
    if not real:
        return [f"zoo:{name}" for name in built]
    zoo = [m for m in DEFAULT_ZOO_IMAGE_MODELS if m.split(":", 1)[1] in built]
    sized = [f"{m}?size={DEFAULT_REAL_IMAGE_SIZE}" for m in real]
    return [u for m in sized for u in (m, random_init_twin(m))] + zoo


def default_pool(models: list[str]) -> str:
    """Pooling of convolutional maps for the layer-wise stages when none is asked for: ``avg2x2`` (2x2 cells,
    4x the channels) when every candidate is a small zoo model, as before; ``avg`` when a real backbone is among
    them: its wide late layers (1280 channels) would become 5120-d under ``avg2x2``, and the probe's O(D^3)
    eigendecompositions then dominated the default run (185 s of fitting per backbone, measured 2026-12-04)."""
    return "avg2x2" if all(m.startswith("zoo:") for m in models) else "avg"


def missing_default_models() -> list[str]:
    """Lines for the record: real default backbones that are not installed here, with the command to install them."""
    from ..models.packaged import PACKAGED, installed_files

    return [f"{m} is not installed ({PACKAGED[m].pip_command}); it was left out of the default candidates."
            for m in DEFAULT_REAL_IMAGE_MODELS if m in PACKAGED and installed_files(PACKAGED[m]) is None]


def make_config(models: list[str] | None = None, data: str | None = None, *, test: str | None = None,
                ood: list[str] | None = None, target: str | None = None, scores: list[str] | None = None,
                top_k: int = DEFAULT_TOP_K, pool: str | None = None, seed: int = 0, finetune: bool = False,
                finetune_epochs: int = 10, gc_samples: int | None = None, modality: str | None = None,
                field: str | None = None, budget: float | None = None, budget_top: int = 4) -> AssessConfig:
    """Check the user's choices and fill in the defaults (the built-in target when neither data nor target is given).

    ``modality`` ("image" / "text") picks the default candidates when ``models`` is empty; for user data the
    caller finds it by loading the data.
    """
    if data is not None and target is not None:
        raise UsageError("give either --data or --target, not both (a target brings its own train, test and OOD data).")
    if top_k < 1:
        raise UsageError(f"--top must be >= 1, got {top_k}.")
    if gc_samples is not None and gc_samples < 0:
        raise UsageError(f"gc_samples must be >= 0 (0 skips geometric complexity), got {gc_samples}.")
    if finetune_epochs < 1:
        raise UsageError(f"--finetune-epochs must be >= 1, got {finetune_epochs}.")
    if budget is not None and not budget > 0:
        raise UsageError(f"--budget must be a positive number of minutes, got {budget}.")
    if budget_top < 2:
        raise UsageError(f"--budget-top must be >= 2 (a shortlist to choose from), got {budget_top}.")
    ood_list = list(ood) if ood else []
    if data is None:
        from ..zoo.targets import TARGETS

        name = target or DEFAULT_TARGET
        if name not in TARGETS:
            raise UsageError(f"unknown target {name!r}; built-in targets: {', '.join(TARGETS)}.")
        t = TARGETS[name]
        data, target, modality = t.train, name, t.modality
        test = test if test is not None else t.test
        ood_list = ood_list or list(t.ood)
    if len(set(ood_list)) != len(ood_list):
        raise UsageError("the same --ood data is given twice; list each OOD set once.")
    chosen = list(models) if models else default_models(modality or "image")
    if not chosen:
        raise UsageError("no candidate models: pass --model (the zoo has no built models).")
    if len(set(chosen)) != len(chosen):
        dup = next(m for m in chosen if chosen.count(m) > 1)
        raise UsageError(f"--model {dup} is given twice; list each candidate once.")
    if scores:
        from ..metrics.scores import get_score
        from ..ranking import RELATEDNESS_SCORES

        for name in scores:
            if name not in RELATEDNESS_SCORES:
                get_score(name)  # UsageError naming the known scores
    notes = missing_default_models() if not models and (modality or "image") == "image" else []
    pool = default_pool(chosen) if pool is None else pool
    if gc_samples is None:  # GC's backward passes dominate the geometry stage of real backbones (about 90 s each at 64)
        gc_samples = 64 if all(m.startswith("zoo:") for m in chosen) else 32
    return AssessConfig(models=chosen, train=data, test=test, ood=ood_list, target=target,
                        scores=list(scores) if scores else list(DEFAULT_ASSESS_SCORES), top_k=top_k, pool=pool,
                        seed=seed, gc_samples=gc_samples, finetune=finetune, finetune_epochs=finetune_epochs, field=field,
                        budget=budget, budget_top=budget_top, notes=notes)
