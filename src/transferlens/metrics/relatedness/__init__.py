"""Task-relatedness: an upper bound on a target task's loss from a transformed reference task.

Reference: A. Mehra, Y. Zhang, J. Hamm, "Understanding the Transferability of Representations via
Task-Relatedness", NeurIPS 2024 (arXiv:2307.00823; v1 "Analysis of Task Transferability in Large
Pre-trained Classifiers"). Official code: github.com/hammlab/TaskTransferAnalysis (read, not copied;
this is an independent implementation in torch-CPU + POT).

Method
------
In a model's feature space the *reference task* R (features ``z_R``, labels ``y_R`` in ``0..C_R-1``,
linear head ``h_R``) is turned into the *target task* T (``z_T``, ``y_T`` in ``0..K_T-1``) by

1. a class-prior re-weighting ``D`` (a distribution on the C_R reference classes),
2. a label map ``B`` (``K_T x C_R``, column-stochastic, ``B_ij = P(y_T = i | y_R = j)``),
3. an affine feature map ``z -> A z + b`` (``A: d_T x d_R``) with approximate inverse ``Abar``.

The transformed classifier is ``h_R'''(z) = B softmax(h_R(Abar (z - b)))`` and its target
cross-entropy obeys ::

    L_T(h_R''')  <=  L_w(D)  +  H(B, D)  +  tau * W

* ``L_w(D) = sum_c D_c * mean_{y_i = c} CE(h_R(z_i), c)`` - re-weighted reference loss;
* ``H(B, D) = -sum_j D_j sum_i B_ij log B_ij`` - label mismatch (conditional entropy of y_T | y_R);
  (both reported with the prior-consistent weights described below);
* ``W = sum_k p_T(k) W1(R'''_k, T_k)`` - distribution mismatch, exact W1 (unsquared Euclidean) between
  target class k and the mixture of transformed reference classes that B sends to k
  (``R'''_k`` has weights ``B_kj D_j``);
* ``tau`` - Lipschitz constant of ``z -> CE(h_R'''(z), k)``: measured as the max input-gradient norm over
  transformed-reference and target points and over *all* labels k (the paper uses true and random
  labels). ``lipschitz_certified = sqrt(2) ||P W_h Abar||_2`` is a global upper bound, reported too.

Derivation (why the terms add up): moving each class-conditional R'''_k onto T_k changes the expected
loss by at most ``tau * W1`` (Kantorovich-Rubinstein), so ``L_T <= sum_k p_T(k) E_{R'''_k}[l_k] + tau W``.
With the joint weights ``w_kj = p_T(k) B_kj D_j / (B D)_k`` the first part is the CE of h_R''' on the
transformed reference (``terms.transformed_reference_loss``; ``terms.bound_direct`` adds ``tau W``), and
``-log (B p)_k <= -log B_kj - log p_j`` bounds it by ``L_w + H`` when ``Abar A = I``. The reported
``L_w = sum_j D'_j l_j`` (``D'_j = sum_k w_kj``) and ``H = -sum_kj w_kj log B_kj`` equal the paper's
``L_w(D)`` and ``H(B, D)`` once ``B D = p_T`` (the prior-matching term drives the optimiser there) and keep
the inequality valid before that. With the certified tau every step holds for the empirical measures
(``terms.bound_certified``); the paper's empirical tau is a lower estimate of the Lipschitz constant, so
``terms.bound`` can fall below the target loss, typically on unrelated targets (see the tests).
``prior_mismatch`` and ``transformed_reference_loss`` report how far the two conditions hold; a warning
is issued when they do not.

h_R is retrained on frozen, standardised reference features with the paper's input-gradient penalty
``CE + mu * mean(relu(||grad_z CE||_2 - tau0)^2)`` on true and random labels (see :mod:`.head`).
Several tau0 are tried (default 0.01, 0.03, ..., 3; a warm-started chain) and the head whose bound
is smallest on the *fitting* split is kept; the reported terms are measured on a held-out split
(``eval_fraction``).

Optimisation (as the paper's ``optimize_WD``): per iteration, a stratified batch of each task; the
exact OT plan (``ot.emd``, network simplex) for cost ``||A z_i + b - z'_j|| + Lambda s ||B e_{y_i} - e_{y'_j}||``
is held fixed for one Adam step on
``H(B,D) + L_w(D) + lambda_WD <pi, C> + lambda_PM ||p_T - B D||^2 + lambda_IC (||A Abar - I||^2 + ||Abar A - I||^2)``.
``B = softmax(.)`` over target classes, ``D = softmax(.)``.

Deliberate differences from the official code
---------------------------------------------
* **Squared vs unsquared cost.** The official plan is solved for unsquared distances but the gradient
  step uses squared ones. Here plan, gradient and reported W all use the same unsquared Euclidean
  cost, so the step is a true (Danskin) sub-gradient of the W1 objective the bound needs.
* **Label-cost constant.** ``Lambda = 1e6 / 1e8`` makes ``ot.emd`` return non-optimal plans (POT issue
  #229). The label cost is instead scaled by the batch's mean feature distance ``s`` with a moderate
  ``Lambda = 10``: a label mismatch costs ~14 mean distances, which is enough to force label-consistent
  transport while keeping the cost matrix well conditioned. The solver's convergence flag is checked.
* **CPU / float64.** No CUDA (the official ``torch.cdist(..., device='cuda')`` crashes on CPU); all
  arrays are float64 and the solver runs on float64 histograms normalised to sum 1.
* **D is differentiated through the transport.** Batches are class-stratified and the source marginal
  is ``D_{y_i} / n_{y_i}``; the OT dual potential gives the gradient of the transport value w.r.t. D.
  (The official code samples ``floor(n D_c)`` points per class, which gives D no transport gradient.)
  D is initialised at the reference prior exactly (``softmax(log p)``; the official ``softmax(p) != p``).
* **B starts exactly uniform** (official: softmax of U(0,1)), so the first plans are driven by the
  features instead of by random label costs.
* **W** is class-conditional with soft (mixture) reference classes and weighted by the target prior
  (official: hard argmax class of ``B``, unweighted mean over classes, ``1e10`` when a class is empty).
* **Abar** is learned jointly, then set to the exact minimiser of the inverse penalty for the final A
  (Sylvester equation; ``A^-1`` when A is square and invertible).
* **Fewer iterations** (300 x batch 500 instead of 1-2k x 500-2500) with larger learning rates for D
  (5e-2) and B (0.1, ramped up linearly over the first 30 % of iterations so that D settles before B
  commits to a label map; otherwise A learns to merge an irrelevant reference class into a target
  class). Aim: < 60 s per model on a 2-core CPU (see docs/BENCHMARKS.d/relatedness.md).
* **Dimension reduction** (``max_dim=128``): larger features are projected onto the top principal
  components of the pooled, per-task standardised fitting features (one shared basis, so ``A = I`` stays
  the natural start). This bounds the O(d^3) cost of A and Abar; the bound is then about the classifier
  on the projected features. ``max_dim=None`` gives the paper's full-dimensional setting.
* **Head selection.** The penalty target tau0 is chosen from a grid by the bound on the fitting split
  (the paper fixes tau0 = 0.2 or 0.02 by hand).
* ``d_R != d_T`` is allowed: A is rectangular, initialised to a truncated identity. The identity start
  assumes corresponding coordinates (reference and target features from the same encoder, the intended
  use); between unrelated feature spaces the optimiser can stop in a poor local optimum, so the bound
  stays valid but is loose.

Label-free variant (this project's own; the paper's label-free version is not in the public code)
-----------------------------------------------------------------------------------------------
With ``target_labels=None`` the target's K_T classes (default ``C_R``) are anonymous: the transport
uses the feature cost only, ``B`` starts at the identity when ``K_T = C_R``, the prior-matching term uses
the frequencies of the transformed classifier's pseudo-labels (argmax) on the target batch as
``p_T``, and ``W`` is the *marginal* W1 between the D-weighted transformed reference and the target. The score
``L_w + H + tau W`` is then a relatedness score, not a proven bound on any target loss.

Usage::

    res = task_relatedness(ref_x, ref_y, tgt_x, tgt_y)  # or tgt_y=None for the label-free variant
    res.bound, res.terms.reference_loss, res.terms.label_mismatch, res.terms.distribution_mismatch
    res.A, res.b, res.B, res.D                           # learned transforms (A, b in raw coordinates)
    res.evaluate(ref_x2, ref_y2, tgt_x2, tgt_y2)         # the terms on other (held-out) data

Lower ``bound`` = more related. Cost: ~``n_iter`` exact OT problems of size ``batch_size``.
"""

from .fit import task_relatedness
from .head import certified_lipschitz, fit_lipschitz_head
from .result import RelatednessConfig, RelatednessTerms, TaskRelatednessResult, TransformedClassifier

__all__ = [
    "RelatednessConfig",
    "RelatednessTerms",
    "TaskRelatednessResult",
    "TransformedClassifier",
    "task_relatedness",
    "fit_lipschitz_head",
    "certified_lipschitz",
]
