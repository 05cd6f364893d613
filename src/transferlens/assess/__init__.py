"""The main workflow, ``transferlens assess``: rank candidates, probe the best layer-wise on ID and OOD data,
optionally fine-tune the winner, and write the records and the HTML report (see :mod:`.workflow`)."""

import sys
from typing import Any

from .analysis import fewshot_curve, holdout_ncc_accuracy, score_agreement
from .config import AssessConfig, default_models, make_config
from .decision import decide
from .workflow import assess

__all__ = ["AssessConfig", "assess", "decide", "default_models", "fewshot_curve", "holdout_ncc_accuracy", "make_config",
           "score_agreement"]


class _CallablePackage(sys.modules[__name__].__class__):
    """``transferlens.assess`` is both this package and its main function: ``transferlens.assess(...)`` runs
    :func:`.workflow.assess` (a package attribute of that name would otherwise be the package itself)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return assess(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
