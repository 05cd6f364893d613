"""The main workflow, ``transferlens assess``: rank candidates, probe the best layer-wise on ID and OOD data,
optionally fine-tune the winner, and write the records and the HTML report (see :mod:`.workflow`)."""

from .analysis import fewshot_curve, holdout_ncc_accuracy, score_agreement
from .config import AssessConfig, default_models, make_config
from .decision import decide
from .workflow import assess

__all__ = ["AssessConfig", "assess", "decide", "default_models", "fewshot_curve", "holdout_ncc_accuracy", "make_config",
           "score_agreement"]
