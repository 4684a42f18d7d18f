"""Reusable code for the Secure AI Notebooks course.

Importing ``helpers`` is cheap and has no side effects: TensorFlow is only imported
by :func:`helpers.setup` (after its log level is set) and by the modules that train
or attack models.

Modules
-------
``helpers.env``        :func:`setup`: seeds, determinism, quiet logs, plot style.
``helpers.data``       offline datasets with seeded, stratified splits (WDBC also as phantom nucleus images).
``helpers.images``     synthetic nucleus images rendered from WDBC rows, and measurements taken back from them.
``helpers.exercises``  exercises with automatic feedback (``check``, ``solution``).
``helpers.validation`` argument checks that raise ``ValueError`` naming the argument.
``helpers.models``     small Keras models (an MLP, a CNN; logits out) and ``predict_proba`` for 1 or k logits.
``helpers.dp``         DP mechanisms (Laplace on a safe grid, Gaussian, exponential), composition,
                       budget ledger, DP-SGD accounting (RDP and PLD: ``dp_sgd_epsilon``, ...).
``helpers.dp_training`` DP-SGD with Poisson subsampling (the algorithm ``dp_sgd_epsilon`` accounts for).
``helpers.privacy_attacks`` membership inference: scores, ROC/AUC with CIs, ε lower bounds (one-run canary audit).
``helpers.robustness`` adversarial attacks (FGSM, PGD, Square), robust accuracy, adversarial training.
``helpers.certify``    certified robustness by randomized smoothing (Cohen et al., 2019), SmoothAdv attack on g.
``helpers.verify``     exact L∞ verification of small ReLU networks (big-M MILP, HiGHS via scipy).
``helpers.explain``    LIME explanations in original units and on nucleus superpixels, stability, deletion curves.
``helpers.metrics``    clinical metrics with confidence intervals, operating points.
``helpers.dp_adversarial`` DP-SGD on per-example PGD examples (private *and* robust training).
``helpers.scorecard``  ``audit()``: one model, four pillars, one table row; model cards.
``helpers.federated``  hospitals as clients: non-IID splits, FedAvg, local and distributed DP-SGD, secure
                       aggregation, Byzantine hospitals (coordinate median, norm bound).
``helpers.secagg``     secure aggregation in outline (Bonawitz et al., 2017): X25519 + ChaCha20 masks, self-masks,
                       Shamir shares, the never-both rule, the joint-view test.
``helpers.he``         CKKS homomorphic encryption (TenSEAL, optional): encrypted linear inference, its error and cost.
``helpers.poisoning``  label flipping, backdoor triggers, spectral signatures and activation clustering, the
                       group-privacy bound on k poisoned records.
``helpers.stealing``   model extraction: equation solving against a logistic API, learning-based copies.
``helpers.unlearning`` forget splits, exact retraining and gradient-ascent unlearning.
``helpers.language``   synthetic clinical notes with canaries, a small character model, exposure, extraction,
                       per-patient DP-SGD, a green-list watermark.
``helpers.assistant``  a scripted tool-using "assistant" for prompt-injection exercises (not a language model).
"""
from helpers.env import COLORS, setup

__all__ = ["COLORS", "setup"]
__version__ = "0.1.0"
