"""The interface of every LM unlearning method, and its registry.

An LM method is one loss over a forget batch and a retain batch (OpenUnlearning's design: its
trainers differ only in `compute_loss`). Everything else, the copy of the model, the optional
LoRA adapters, batching, AdamW, the schedule, the divergence check, is the one loop in
`unlearn.lm.methods.loop`. Hyperparameters are constructor arguments with the paper's (or
OpenUnlearning's) defaults, stored as attributes of the same name, as for the classifier
methods; a method's own ones come first and the loop's (`lr`, `epochs`, ...) are inherited.

    method = unlearn.lm.methods.get("npo", lr=1e-4)
    new_model = method.unlearn(model, tokenizer, forget, retain)   # lists of LMExample
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from unlearn.errors import UnlearnInputError
from unlearn.lm.examples import LMExample
from unlearn.lm.methods.batch import LMBatch
from unlearn.lm.methods.loop import finetune
from unlearn.lm.scoring import mean_token_nll, sequence_nll
from unlearn.registry import Registry, hyperparameters

# The LM family's registry, separate from the classifier methods' (`unlearn.methods`).
_REGISTRY = Registry("LM method")
register = _REGISTRY.register
available = _REGISTRY.available
get_class = _REGISTRY.get_class
get = _REGISTRY.get


def finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class LMMethod:
    """Base class. Subclasses set `name`, `requires_retain`, and define `loss`.

    The fine-tuning loop's hyperparameters (OpenUnlearning's TOFU trainer unless said):
    lr : AdamW learning rate (1e-5 for a fine-tuned Llama-3.2-1B; a small model trained from
        scratch needs a larger one: tune it).
    epochs : passes over the forget set (10); each step takes a forget batch and a retain batch
        of the same size, drawn at random from the retain set (OpenUnlearning's "anchor: forget").
    batch_size : 32 (OpenUnlearning: 8 per device × 4 accumulation steps).
    weight_decay : 0.01.
    warmup_epochs : linear warm-up over this many epochs (1), then linear decay, shifted by one
        step so that no step is taken at learning rate 0.
    max_grad_norm : gradient-norm clipping (1.0, the `transformers` Trainer's default); 0 is off.
    lora_rank : 0 fine-tunes the weights themselves; r > 0 trains rank-r LoRA adapters (peft,
        lora_alpha = 2r, no dropout) on the linear layers the method updates, merged back into
        the returned model: for models too large to fine-tune whole.
    """

    name: ClassVar[str] = "lm-method"
    requires_retain: ClassVar[bool] = False
    # Whether the loss uses a retain batch when one is given; False for losses on D_F alone (GA).
    uses_retain: ClassVar[bool] = True
    # Whether the loss compares with the frozen original (NPO, DPO, RMU's retain term).
    needs_reference: ClassVar[bool] = False

    def __init__(self, lr: float = 1e-5, epochs: int = 10, batch_size: int = 32, weight_decay: float = 0.01,
                 warmup_epochs: float = 1.0, max_grad_norm: float = 1.0, lora_rank: int = 0):
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.max_grad_norm = max_grad_norm
        self.lora_rank = lora_rank
        self.reference_ = None

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """Constructor arguments and their defaults, the method's own first."""
        return hyperparameters(cls)

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.hyperparameters()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ---- checks: every hyperparameter a method cannot use is refused by name, before any work ----
    def _refuse(self, key: str, what: str) -> None:
        raise UnlearnInputError(f"{self.name}: {key} must be {what}, got {getattr(self, key)!r}")

    def positive(self, *keys: str) -> None:
        for key in keys:
            if not (finite_number(getattr(self, key)) and getattr(self, key) > 0):
                self._refuse(key, "a positive number")

    def non_negative(self, *keys: str) -> None:
        for key in keys:
            if not (finite_number(getattr(self, key)) and getattr(self, key) >= 0):
                self._refuse(key, "a number >= 0")

    def integer(self, key: str, least: int) -> None:
        value = getattr(self, key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            self._refuse(key, f"an integer >= {least}")

    def choice(self, key: str, options: Sequence[str]) -> None:
        if getattr(self, key) not in options:
            self._refuse(key, f"one of {list(options)}")

    def check(self) -> None:
        """Refuse unusable hyperparameters; subclasses add their own and call this."""
        self.positive("lr")
        self.non_negative("weight_decay", "warmup_epochs", "max_grad_norm")
        self.integer("epochs", 1)
        self.integer("batch_size", 1)
        self.integer("lora_rank", 0)

    # ---- what a method defines ----
    def prepare(self, model, tokenizer, forget: Sequence[LMExample], retain: Sequence[LMExample] | None, *,
                generator: torch.Generator, context: dict) -> list[tuple[str, ...]] | None:
        """Per-run state, on the model about to be trained (the reference is set by then).

        Returns, for a method that trains the forget prompts towards other completions than the
        true ones, the candidate completions of every forget example: the loop draws one per
        example each time the example is in a batch (`LMBatch.targets`). None otherwise.
        """
        return None

    def trainable(self, model) -> list[torch.nn.Module] | None:
        """The modules whose weights the method updates; None: the whole model."""
        return None

    def loss(self, model, forget_batch: LMBatch, retain_batch: LMBatch | None) -> torch.Tensor:
        raise NotImplementedError

    # ---- pieces several losses share ----
    def retain_nll(self, model, retain_batch: LMBatch | None) -> torch.Tensor | float:
        """The mean token NLL of the retain batch (0 without one): GradDiff's and most methods' retain term."""
        return 0.0 if retain_batch is None else mean_token_nll(model, retain_batch.encode())

    @torch.no_grad()
    def reference_nll(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed NLL of each completion under the frozen original (`needs_reference`)."""
        if self.reference_ is None:
            raise RuntimeError(f"{self.name}: no reference model; the loop sets it (needs_reference)")
        with self.reference_() as reference:
            return sequence_nll(reference, encoded)[0]

    def unlearn(self, model, tokenizer, forget: Sequence[LMExample], retain: Sequence[LMExample] | None = None, *,
                seed: int = 0, device=None, **context):
        """A copy of `model` that has unlearned `forget` (using `retain` when given); `model` is untouched."""
        self.check()
        if len(forget) == 0:
            raise UnlearnInputError(f"{self.name}: the forget set is empty")
        if self.requires_retain and (retain is None or len(retain) == 0):
            raise UnlearnInputError(f"{self.name} needs the retain set; it cannot run without it")
        if not self.uses_retain or (retain is not None and len(retain) == 0):
            retain = None
        return finetune(self, model, tokenizer, list(forget), None if retain is None else list(retain),
                        seed=seed, device=device, context=context)
