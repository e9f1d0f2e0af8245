"""Language-model protocols: the schema of a YAML protocol that names a `corpus:` instead of a `dataset:`.

A language-model protocol fixes what a classifier protocol fixes (`unlearn.experiments.config`),
in the LM family's terms: the corpus (`unlearn.lm.corpus`), the recipe of the default GPT-2
(`unlearn.lm.models.LMRecipe`: a dict of the fields it changes), the forget sets as fractions
of the trainable entities (TOFU's forget01/05/10), the settings, the LM methods
(`unlearn.lm.methods`) with their hyperparameters, the audits' settings, the tuning budget and
the seeds. `unlearn.experiments.parse_config` hands a mapping with a `corpus` key here, so
`unlearn bench` runs both kinds of protocol; a method of the other family is refused by name before any work starts.

    config = load_config("configs/lm-facts.yaml")      # an LMConfig
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator, model_serializer, model_validator

from unlearn.errors import UnlearnInputError
from unlearn.experiments.config import _ProtocolChecks, _Strict, _validated, _where

# TOFU tunes the learning rate and epochs of every method; OpenUnlearning also sweeps NPO's and
# SimNPO's β and the retain weight α. The lr range spans 1e-5 (TOFU's Llama value) to 1e-2, five
# times the default GPT-2's training peak (2e-3): a small model trained from scratch moves only
# at rates near the one it was trained with.
LM_LR = {"low": 1e-5, "high": 1e-2, "log": True}
LM_EPOCHS = {"low": 1, "high": 10}
DEFAULT_LM_SPACES: dict[str, dict[str, Any]] = {
    "ga": {"lr": LM_LR, "epochs": LM_EPOCHS},
    "graddiff": {"lr": LM_LR, "epochs": LM_EPOCHS, "alpha": {"low": 0.5, "high": 5.0, "log": True}},
    "npo": {"lr": LM_LR, "epochs": LM_EPOCHS, "beta": {"low": 0.05, "high": 0.5, "log": True}},
    "simnpo": {"lr": LM_LR, "epochs": LM_EPOCHS, "beta": {"low": 1.0, "high": 10.0, "log": True}},
    "rmu": {"lr": LM_LR, "epochs": LM_EPOCHS, "steering_scale": {"low": 1.0, "high": 20.0, "log": True}},
    "idknll": {"lr": LM_LR, "epochs": LM_EPOCHS},
    "idkdpo": {"lr": LM_LR, "epochs": LM_EPOCHS, "beta": {"low": 0.05, "high": 0.5, "log": True}},
    "sg": {"lr": LM_LR, "epochs": LM_EPOCHS, "alpha": [0, 0.1, 0.5, 1, 2, 5]},  # SG's α grid, shortened
    "amun": {"lr": LM_LR, "epochs": LM_EPOCHS, "with_forget": [True, False]},
}


class LMForgetSpec(_Strict):
    """A family of forget sets: `fraction` of the trainable entities, one draw per seed."""

    name: str | None = None
    fraction: float
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    kind: ClassVar[str] = "random"  # every LM forget set is a random draw of entities (`jobs.draw_units`)

    @field_validator("fraction")
    @classmethod
    def _open_unit_interval(cls, value):
        if not 0 < value < 1:
            raise ValueError(f"forget fraction must lie in (0, 1), got {value}")
        return value

    @property
    def label(self) -> str:
        return self.name or f"forget{self.fraction * 100:02g}"  # TOFU's names: forget01, forget05, forget10


class LMRelearnSpec(_Strict):
    """The relearning attacks (`unlearn.lm.audit.relearn`) on every row, Retrain's the reference:
    `RelearnSettings.for_recipe(recipe, ...)` with these fields (docs/audits.md: the budget rule)."""

    passes: tuple[float, ...] = (0, 1, 2, 4, 8)
    lr_share: float = Field(0.1, gt=0)
    fraction: float = Field(0.5, gt=0, lt=1)
    batch_size: int = Field(8, ge=1)


class LMAuditSpec(_Strict):
    """`unlearn.lm.audit.evaluate_lm`'s settings: questions per set at most, Min-K%++'s k, VerbMem's
    prefix; and `relearn`, the relearning attacks, off unless given."""

    max_questions: int | None = Field(400, ge=1)
    k: float = Field(0.2, gt=0, lt=1)
    prefix_tokens: int = Field(32, ge=1)
    relearn: LMRelearnSpec | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # Without `relearn` a protocol dumps (and so hashes: job ids, tuning and run digests) as it
        # did before the field existed, so runs started then resume unchanged.
        out = handler(self)
        if out.get("relearn") is None:
            out.pop("relearn", None)
        return out


class LMTuneSpec(_Strict):
    """As `config.TuneSpec`, scored with gap-lm: `trials` per method, on an original of its own
    (`model_seed`) and on forget sets drawn with `forget_seed` that no evaluation forget set meets."""

    trials: int = Field(8, ge=0)
    forget_seed: int = 1000
    model_seed: int = 100
    repeats: int = Field(1, ge=1)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)


class LMConfig(_ProtocolChecks):
    name: str
    corpus: str
    corpus_seed: int = 0
    # Fields of `unlearn.lm.models.LMRecipe` that differ from the default GPT-2's.
    recipe: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    runs: int = Field(1, ge=1)
    draws: Literal["crossed", "paired"] = "crossed"  # as a classifier protocol's (`config.Config.draws`)
    forget: list[LMForgetSpec] = Field(min_length=1)
    settings: list[Literal["with_retain", "without_retain"]] = Field(default_factory=lambda: ["with_retain"],
                                                                       min_length=1)
    methods: dict[str, dict[str, Any] | None] = Field(min_length=1)
    audit: LMAuditSpec = Field(default_factory=LMAuditSpec)
    tune: LMTuneSpec = Field(default_factory=LMTuneSpec)
    reference_rows: list[Literal["original", "retrain-floor"]] = Field(
        default_factory=lambda: ["original", "retrain-floor"])
    device: str = "cpu"
    torch_threads: int | None = Field(None, ge=1)

    @field_validator("corpus")
    @classmethod
    def _known_corpus(cls, value):
        from unlearn.lm.corpus import available

        if value not in available():
            raise ValueError(f"unknown corpus {value!r}; known: {', '.join(available())}")
        return value

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, value):
        from unlearn.lm.models import LMRecipe

        try:
            LMRecipe(**value)
        except TypeError as err:
            raise ValueError(f"not a field of LMRecipe ({err})") from None
        return value

    @model_validator(mode="after")
    def _tuning_is_separate(self):
        if not self.tune.trials:
            return self
        self._tuning_model_seed_apart()
        for spec in self.forget:
            if self.tune.forget_seed in spec.seeds:
                raise ValueError(f"tune.forget_seed {self.tune.forget_seed} is an evaluation seed of forget set "
                                 f"{spec.label}; tuning needs a forget set of its own")
        largest = max(spec.fraction for spec in self.forget)
        for spec in self.forget:
            if spec.fraction + largest > 1:
                raise ValueError(f"tune: forget set {spec.label} ({spec.fraction:.0%}) cannot be drawn outside the "
                                 f"largest tuning forget set ({largest:.0%}); tune on at most half of the "
                                 f"entities or set tune.trials: 0")
        return self

    kind: ClassVar[str] = "lm"
    tune_objective: ClassVar[str] = "gap-lm"

    @property
    def lm_recipe(self):
        from unlearn.lm.models import LMRecipe

        return LMRecipe(**self.recipe)

    def hparams(self, method: str) -> dict[str, Any]:
        """The protocol's hyperparameters of `method`; a learning rate it does not give is the recipe's
        (`training_lr`)."""
        hp = dict(self.methods.get(method) or {})
        if method != "retrain" and "lr" not in hp:
            hp["lr"] = self.lm_recipe.lr
        return hp

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def parse_lm_config(text: str, source: str = "<config>") -> LMConfig:
    """Validate an LM protocol given as YAML text; raise `UnlearnInputError` naming file, line and key."""
    root, raw = yaml.compose(text), yaml.safe_load(text)
    config = _validated(LMConfig, raw, source, root)
    check_lm_methods(config, lambda loc: _where(source, root, loc))
    return config


def check_lm_methods(config: LMConfig, where) -> None:
    """Every method an LM method (a classifier method is refused by name), its hyperparameters accepted."""
    from unlearn import methods as classifier_methods
    from unlearn.lm import methods

    for name, hp in config.methods.items():
        at = where(("methods", name))
        if name == "retrain":
            if hp:
                raise UnlearnInputError(f"{at}: methods.retrain: the Retrain row is the oracle, trained with the "
                                        f"protocol's recipe and seeds; it takes no hyperparameters here")
            continue
        if name not in methods.available():
            family = (f"{name!r} is a classifier method, and this is a language-model protocol (corpus: "
                      f"{config.corpus})" if name in classifier_methods.available() else f"unknown method {name!r}")
            raise UnlearnInputError(f"{at}: methods.{name}: {family}; LM methods: {', '.join(methods.available())}")
        try:
            methods.get(name, **config.hparams(name)).check()
        except UnlearnInputError as err:
            raise UnlearnInputError(f"{at}: methods.{name}: {err}") from None
        except (TypeError, ValueError) as err:
            raise UnlearnInputError(f"{at}: methods.{name}: bad hyperparameter value ({err})") from None
    for name in config.tune.space:
        if name not in config.methods:
            raise UnlearnInputError(f"{where(('tune', 'space', name))}: tune.space.{name}: method not listed under "
                                    f"`methods`")
        lm_search_space(config, name)


def lm_search_space(config: LMConfig, method: str) -> dict[str, Any]:
    """The protocol's `tune.space.<method>`, else `DEFAULT_LM_SPACES`; {} for Retrain."""
    from unlearn.experiments.tune import _check_spec
    from unlearn.lm import methods

    if method == "retrain":
        return {}
    known = methods.get_class(method).hyperparameters()
    space = config.tune.space.get(method, DEFAULT_LM_SPACES.get(method, {"lr": LM_LR, "epochs": LM_EPOCHS}))
    unknown = set(space) - set(known)
    if unknown:
        raise UnlearnInputError(f"tune.space.{method}: {method} has no hyperparameter(s) {sorted(unknown)}")
    for name, spec in space.items():
        _check_spec(method, name, spec)
    return dict(space)
