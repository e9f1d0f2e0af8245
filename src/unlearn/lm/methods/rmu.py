"""RMU: representation misdirection, scrambling a layer's activations on the forget data.

Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning", 2024
(Sec. 5; centerforaisafety/wmdp, and OpenUnlearning's `RMU`). At one layer ℓ, with h_θ the
layer's output (the residual stream) and u a fixed random unit vector:

    L = γ · E_F ‖h_θ(x) − c·u‖² + α · E_R ‖h_θ(x) − h_ref(x)‖²,

squared distances averaged over the hidden units and over the positions that produce the answer
(`answer_positions`), h_ref the frozen original's. Pushing the forget activations towards a large random direction makes later layers
read noise there; the retain term keeps the rest where it was. Only the MLPs of layers
ℓ−2..ℓ are updated (the paper updates their down-projections).

Defaults and deviations (docs/methods.md, "RMU"):
- u: uniform on [0, 1)^d, normalised (as both codes draw it), from the run's seed.
- c: the paper's 6.5 (Zephyr-7B, ℓ = 7) and OpenUnlearning's values (2 in its config, 20 in its
  code) are absolute numbers for 7B/1B models; here, by default, c = `steering_scale` × the mean
  norm of the original's layer-ℓ activations on the forget answers (5×, our choice), so it
  means the same for any model size. An explicit `steering_coeff` overrides it.
- ℓ: the paper's 7 of 32 layers (OpenUnlearning: 7 of 16) does not transfer by index; the
  default is the middle layer.
- Updated weights: every weight of the MLPs of layers ℓ−2..ℓ, not only their down-projections
  as the paper: a small model's down-projections alone leave little to move.
- α: by default 1 + (c / n)², n the mean activation norm that sets c, i.e. 26 at the default
  scale (an explicit `alpha` overrides it). The paper's 1200 (Zephyr-7B, c = 6.5) and
  OpenUnlearning's 1 (c = 2) balance two terms whose sizes depend on the model's activation
  scale. Here the forget term starts at about E‖h − c·u‖²/d ≈ (1 + (c/n)²)·n²/d, so this α
  makes a drift of the retain activations by one activation norm cost what the whole forget
  term costs at the start, on any model. Measured on the default GPT-2 (forget10, lr 2e-3, 10
  epochs): α = 1200 moved no activation (forget, retain and neighbour accuracy 100, as the
  original); α = 1 forgot everything but kept 78.8% of retain answers; α = 30 forgot all but
  1.2% and kept 98.8% (neighbours 100). Those two were tried first; the rule comes from the
  loss's scale, not from fitting them.
- Positions: OpenUnlearning averages over the completion's own positions (labels ≠ −100). A
  causal LM writes the first answer token from the last prompt position, which that mask leaves
  out; on long answers (TOFU's sentences) the loss is small, on one- to three-token answers (a
  fact's value) it left every answer's first token untouched, and RMU changed no answer at any
  learning rate (lm-facts tuning at commit d4c4aca: every trial scored as doing nothing). Here
  the positions are shifted by one, to those that produce the completion; for plain text
  (everything a label) that is every position but the last.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn.errors import UnlearnInputError
from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.methods.batch import LMBatch
from unlearn.lm.scoring import IGNORE


def decoder_layers(model) -> nn.ModuleList:
    """The model's stack of transformer blocks (GPT-2's transformer.h, Llama's model.layers, ...)."""
    count = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise UnlearnInputError(f"rmu: cannot find the {count} decoder layers of {type(model).__name__}")


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions whose next-token prediction is a completion token [B, T]: the last prompt
    token and every completion token but the last. A causal LM writes token t+1 from position t,
    so these are the positions that produce the answer (the first answer token comes from the
    last prompt position, which the labels' own mask leaves out)."""
    produces = torch.zeros_like(labels, dtype=torch.bool)
    produces[:, :-1] = labels[:, 1:] != IGNORE
    return produces


def layer_activations(model, layer: int, encoded: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(output of decoder layer `layer` [B, T, d], mask of the positions that produce the completion [B, T])."""
    captured = []

    def keep(module, inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    device = next(model.parameters()).device
    handle = decoder_layers(model)[layer].register_forward_hook(keep)
    try:
        model(input_ids=encoded["input_ids"].to(device), attention_mask=encoded["attention_mask"].to(device))
    finally:
        handle.remove()
    return captured[0], answer_positions(encoded["labels"]).to(device)


def masked_mse(activations: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared distance averaged over hidden units, then over each sequence's masked tokens, then sequences."""
    per_token = (activations - target).pow(2).mean(-1) * mask
    return (per_token.sum(1) / mask.sum(1).clamp(min=1)).mean()


@register
class RMU(LMMethod):
    """Representation misdirection for unlearning.

    layer : ℓ, the decoder layer whose output is steered (None: the middle layer).
    updated_layers : how many MLPs are updated, ending at ℓ (3: ℓ−2..ℓ, as the paper).
    steering_coeff : c; None sets c = steering_scale × mean activation norm (see the module notes).
    steering_scale : the multiple of the activation norm used when steering_coeff is None (5).
    alpha : weight of the retain term (None: 1 + (c / mean activation norm)², see the module
        notes). gamma : weight of the forget term (1).
    Other hyperparameters: the loop's (`LMMethod`). After `unlearn`, `control_` is c·u.
    """

    name = "rmu"
    requires_retain = True
    needs_reference = True

    def __init__(self, layer: int | None = None, updated_layers: int = 3, steering_coeff: float | None = None,
                 steering_scale: float = 5.0, alpha: float | None = None, gamma: float = 1.0, **loop):
        super().__init__(**loop)
        self.layer = layer
        self.updated_layers = updated_layers
        self.steering_coeff = steering_coeff
        self.steering_scale = steering_scale
        self.alpha = alpha
        self.gamma = gamma

    def check(self):
        super().check()
        if self.layer is not None:
            self.integer("layer", 0)
        if self.steering_coeff is not None:
            self.positive("steering_coeff")
        self.integer("updated_layers", 1)
        self.positive("steering_scale")
        if self.alpha is not None:
            self.non_negative("alpha")
        self.non_negative("gamma")

    def chosen_layer(self, model) -> int:
        count = len(decoder_layers(model))
        layer = count // 2 if self.layer is None else self.layer
        if layer >= count:
            raise UnlearnInputError(f"rmu: layer must be below the model's {count} layers, got {layer}")
        return layer

    def trainable(self, model):
        layers, top = decoder_layers(model), self.chosen_layer(model)
        chosen = [layers[i] for i in range(max(0, top - self.updated_layers + 1), top + 1)]
        if not all(isinstance(getattr(block, "mlp", None), nn.Module) for block in chosen):
            raise UnlearnInputError(f"rmu: the decoder layers of {type(model).__name__} have no `mlp` module")
        return [block.mlp for block in chosen]

    def prepare(self, model, tokenizer, forget, retain, *, generator, context):
        self.layer_ = self.chosen_layer(model)
        norms, counts = 0.0, 0
        with torch.no_grad(), self.reference_() as reference:
            for start in range(0, len(forget), self.batch_size):
                batch = LMBatch(tokenizer, forget[start:start + self.batch_size])
                hidden, mask = layer_activations(reference, self.layer_, batch.encode())
                norms += float((hidden.norm(dim=-1) * mask).sum())
                counts += int(mask.sum())
        mean_norm = norms / max(counts, 1)
        coefficient = self.steering_scale * mean_norm if self.steering_coeff is None else self.steering_coeff
        self.alpha_ = 1.0 + (coefficient / max(mean_norm, 1e-12)) ** 2 if self.alpha is None else self.alpha
        width = model.config.hidden_size
        direction = torch.rand(width, generator=generator)
        device = next(model.parameters()).device
        self.control_ = (coefficient * direction / direction.norm()).to(device)
        self.stats_ = {"layer": self.layer_, "steering_coeff": coefficient, "alpha": self.alpha_}
        return None

    def loss(self, model, forget_batch, retain_batch):
        hidden, mask = layer_activations(model, self.layer_, forget_batch.encode())
        forget = masked_mse(hidden, self.control_.to(hidden.dtype), mask)
        retain = 0.0
        if retain_batch is not None:
            encoded = retain_batch.encode()
            hidden, mask = layer_activations(model, self.layer_, encoded)
            with torch.no_grad(), self.reference_() as reference:
                target, _ = layer_activations(reference, self.layer_, encoded)
            retain = masked_mse(hidden, target.to(hidden.dtype), mask)
        return self.gamma * forget + self.alpha_ * retain
