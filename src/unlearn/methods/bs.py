"""BS (boundary shrink): push each forget sample across its nearest decision boundary.

Each x ∈ D_F is relabelled with the original model's prediction at its FGSM neighbour
x + ε·sign(∇ₓ CE(θ_o; x, y)), ε = 0.1 in pixel space (L∞); the neighbour is computed once, on a
frozen copy of θ_o. The model is then fine-tuned on (x, neighbour label), which moves D_F to the
nearest wrong class without the random jumps of RL (Chen et al., CVPR 2023). With D_R, D_R is
added to the mix with its own labels (the AMUN paper's "with D_R" column); without D_R the mix is
D_F alone, as in the BS paper. Where FGSM does not change the prediction, the label stays y (as in
the public code; such samples are not pushed).

    new = unlearn.methods.get("bs").unlearn(model, forget)
"""

from __future__ import annotations

from unlearn.attacks import fgsm
from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.methods.shared import finetune, method_recipe
from unlearn.training import Source


@register
class BoundaryShrink(Method):
    """Boundary shrink (Chen et al. 2023).

    Parameters
    ----------
    bound : FGSM step ε, L∞ in pixel space (paper: 0.1).
    lr : SGD learning rate (BS paper's code: 1e-5; SalUn's CIFAR-10 scripts use 5e-6 to 1e-6).
    epochs : passes over the mix (default 10).
    batch_size : 128, momentum 0.9, weight decay 5e-4.

    After `unlearn`, `stats_` records how many forget samples FGSM moved to another class.

    References
    ----------
    Chen, Gao, Zhou, Ren, Li, "Boundary Unlearning", CVPR 2023.
    """

    name = "bs"

    def __init__(self, bound: float = 0.1, lr: float = 1e-5, epochs: int = 10, batch_size: int = 128):
        self.bound, self.lr, self.epochs, self.batch_size = bound, lr, epochs, batch_size

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        if not (isinstance(self.bound, (int, float)) and self.bound > 0):
            raise UnlearnInputError(f"bs: bound must be a positive number, got {self.bound!r}")
        # `model` is already the method's own copy and untouched so far: it is θ_o for the attack.
        neighbour = fgsm(model, forget.x, forget.y, self.bound, norm="linf", device=device)
        self.stats_ = {"n_forget": len(forget), "n_moved": int(neighbour.success.sum()), "bound": self.bound}
        shrunk = ArrayDataset(forget.x, neighbour.y_adv)  # original inputs, the neighbours' labels
        sources = ([Source(retain)] if retain is not None else []) + [Source(shrunk)]
        return finetune(model, sources, recipe, seed=seed, device=device, name=self.name)
