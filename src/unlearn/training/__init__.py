"""Training layer: named recipes and the one training loop."""

from unlearn.training.loop import Source, fit, lr_factor, make_optimizer  # noqa: F401
from unlearn.training.recipes import (  # noqa: F401
    DEFAULT_ARCH,
    RECIPES,
    Recipe,
    default_arch,
    default_arch_args,
    default_recipe,
    get_recipe,
)
from unlearn.training.train import indices_digest, train  # noqa: F401
