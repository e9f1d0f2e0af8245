"""Adversarial attacks on pixel-space inputs: AMUN's closest-adversarial search (PGD with per-sample
early exit and ε doubling, L2 or L∞ ball), its ε calibration, plain PGD, and FGSM.

    from unlearn.attacks import closest_adversarial
    adv = closest_adversarial(model, forget.x, forget.y)      # ε_init calibrated, L2, 50 steps
    adv.success_rate, adv.summary()
"""

from unlearn.attacks.fgsm import fgsm  # noqa: F401
from unlearn.attacks.pgd import AdversarialSet, calibrate_epsilon, closest_adversarial, pgd  # noqa: F401
