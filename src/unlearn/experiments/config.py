"""Benchmark protocols as YAML files: the schema, and loading that names the key and line at fault.

A protocol fixes everything a figure depends on (BENCHMARKS.md): data, model, training recipe,
forget sets and their seeds, the settings with and without D_R, the methods with their
hyperparameters, the audits and the seeds. It is validated completely when it is loaded, before any
work starts: an unknown method, an unknown key, a value of the wrong type or a forget fraction
outside (0, 1) is refused with the file, line and key in the message.

    config = load_config("configs/digits.yaml")
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from unlearn.errors import UnlearnInputError

# The retrain-floor row retrains with model seed + this (`jobs.floor_seed`); configs refuse model
# seeds this far apart, so a floor seed is never another row's model seed.
FLOOR_SEED_OFFSET = 1000

SETTINGS = ("with_retain", "without_retain")
# The attacks of the audit contract (`unlearn.audit.evaluate`); "acc" is always computed.
CONTRACT_ATTACKS = ("acc", "mis", "loss", "rmia", "lira", "ulira", "epsilon")


def _accepted_by(check, value):
    """`value`, if `check` accepts it; its refusal as the ValueError pydantic reports with a location."""
    try:
        check(value)
    except UnlearnInputError as err:
        raise ValueError(str(err)) from err
    return value


def known_attacks() -> tuple[str, ...]:
    """The audit layer's own list when it has one (it may add attacks), else the contract's."""
    try:
        from unlearn.audit import ATTACKS
    except ImportError:
        return CONTRACT_ATTACKS
    return tuple(ATTACKS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    arch: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_arch(self):
        from unlearn.models.architectures import available

        if self.arch not in available():
            raise ValueError(f"unknown architecture {self.arch!r}; known: {', '.join(available())}")
        return self


class ForgetSpec(_Strict):
    """A family of forget sets: one per seed. `random` takes `fraction` or `count`; `class` takes `classes`."""

    name: str | None = None
    kind: Literal["random", "class"] = "random"
    fraction: float | None = None
    count: int | None = None
    classes: list[int] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("fraction")
    @classmethod
    def _open_unit_interval(cls, value):
        if value is not None and not 0 < value < 1:
            raise ValueError(f"forget fraction must lie in (0, 1), got {value}")
        return value

    @model_validator(mode="after")
    def _one_size(self):
        if self.kind == "random" and (self.fraction is None) == (self.count is None):
            raise ValueError("a random forget set takes exactly one of fraction or count")
        if self.kind == "class" and not self.classes:
            raise ValueError("a class forget set needs a non-empty list `classes`")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.kind == "class":
            return "class-" + "-".join(str(c) for c in self.classes or [])
        return f"random-{self.fraction * 100:g}%" if self.fraction is not None else f"random-{self.count}"


class AuditSpec(_Strict):
    attacks: list[str] = Field(default_factory=lambda: ["acc", "mis", "loss", "rmia"])
    # Reference models for RMIA/LiRA (docs/audits.md: strength vs count; 128 in the papers), drawn
    # with `reference_seed`: one bank of references shared by every method and seed of the protocol.
    n_reference: int = Field(8, ge=1)
    reference_seed: int = 0
    # RMIA's settings (`unlearn.audit.RMIASettings`: signal, temperature, margin, taylor_terms, trim,
    # queries, gamma, offline_a); omitted keys take the defaults chosen in docs/audits.md.
    rmia: dict[str, Any] = Field(default_factory=dict)
    # Models per kind for the ε score ("epsilon"; at least 3: 2⌈ln(N − 1)⌉ buckets) and shadow models for "ulira".
    n_models: int = Field(8, ge=3)
    n_shadow: int = Field(16, ge=4)
    # Evaluate on the evaluation half of the test split and give methods the validation half as
    # known non-members (`holdout`, SG needs it), so no method sees the data it is audited on.
    holdout: bool = True

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, value):
        known = known_attacks()
        unknown = [a for a in value if a not in known]
        if unknown:
            raise ValueError(f"unknown attack(s) {unknown}; known: {', '.join(known)}")
        if "acc" not in value:
            value = ["acc", *value]  # every table starts with the accuracies
        return value

    @field_validator("n_reference")
    @classmethod
    def _enough_references(cls, value, info: ValidationInfo):
        try:
            from unlearn.audit import MIN_REFERENCES
        except ImportError:
            return value
        for attack in info.data.get("attacks") or []:  # `attacks` is declared first, so validated by now
            least = MIN_REFERENCES.get(attack)
            if least and value < least:
                raise ValueError(f"{attack} needs at least {least} reference models, got {value}")
        return value

    @field_validator("rmia")
    @classmethod
    def _rmia_settings(cls, value):
        from unlearn.audit import RMIASettings

        return _accepted_by(RMIASettings.of, value)

    @field_validator("n_shadow")
    @classmethod
    def _even_shadows(cls, value):
        if value % 2:
            raise ValueError(f"U-LiRA shadow models come in pairs; n_shadow must be even, got {value}")
        return value


class TuneSpec(_Strict):
    """The tuning stage of a bench (`unlearn.experiments.tune`): every method gets `trials` trials.

    Each method is tuned per forget set and setting on a forget set drawn with `forget_seed` (a
    seed the evaluation does not use), scored with `objective` on the validation half of the test
    split only. `trials: 0` runs the protocol's hyperparameters (the papers' defaults), untuned.
    """

    trials: int = Field(20, ge=0)
    forget_seed: int = 1000
    # The original model the trials unlearn: a seed of its own, so no evaluation model is tuned on
    # (validated: not among `seeds`, nor a retrain-floor seed).
    model_seed: int = 100
    # The absolute learning-rate range every study reaches, whatever its default and its budget:
    # after the protocol's values, the trials take its high end, its low end, then decades between
    # (`tune.coverage_lrs`). It must hold every tuned method's default and 0.1 (validated).
    lr_range: tuple[float, float] = (1e-5, 1e-1)
    # A trial that diverged is replaced by another, up to this many per study (counted in the report).
    replace_failed: int = Field(2, ge=0)
    # Runs per trial (run seeds 0, 1, ...), scored by their mean gap. One run is one draw: where a
    # method's outcome turns on the run's randomness (FT at lr 0.1 on the CIFAR-10 CNN forgot with
    # two of four run seeds, docs/results.md), a single run can misjudge the point. Costs `repeats`
    # times the tuning; every method gets the same number.
    repeats: int = Field(1, ge=1)
    # The gap the search minimises; None: gap-rmia when RMIA is audited, else gap-mis.
    objective: Literal["gap-rmia", "gap-mis"] | None = None
    # `unlearn tune` only: one setting (None: every setting of the protocol).
    setting: Literal["with_retain", "without_retain"] | None = None
    # Per method, per hyperparameter: a list of choices, or {low, high, log} for a range. A method
    # not listed gets the space its paper tunes (`tune.DEFAULT_SPACES`).
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("lr_range")
    @classmethod
    def _range_holds_a_tenth(cls, value):
        low, high = value
        if not 0 < low < high or not low <= 0.1 <= high:
            raise ValueError(f"lr_range must be [low, high] with 0 < low < high and 0.1 inside, got {list(value)}")
        return value

    @field_validator("trials")
    @classmethod
    def _enough_for_both_ends(cls, value):
        if 0 < value < 3:
            raise ValueError(f"trials: the protocol's values and both ends of lr_range take 3 trials; got {value} "
                             f"(0 runs untuned)")
        return value


class _ProtocolChecks(_Strict):
    """What every protocol, classifier or LM, must satisfy: distinct forget-set names, and model
    seeds close enough that the retrain-floor seeds (seed + FLOOR_SEED_OFFSET) meet none of them."""

    @model_validator(mode="after")
    def _unique_forget_labels(self):
        labels = [f.label for f in self.forget]
        if len(set(labels)) != len(labels):
            raise ValueError(f"forget sets need distinct names, got {labels}")
        return self

    @model_validator(mode="after")
    def _floor_seeds_apart(self):
        if "retrain-floor" in self.reference_rows and max(self.seeds) - min(self.seeds) >= FLOOR_SEED_OFFSET:
            raise ValueError(f"seeds: the retrain-floor row retrains with model seed + {FLOOR_SEED_OFFSET}, so "
                             f"model seeds must lie within {FLOOR_SEED_OFFSET} of each other")
        return self

    @model_validator(mode="after")
    def _paired_draws_line_up(self):
        if self.draws == "paired":
            for spec in self.forget:
                if spec.kind == "random" and len(spec.seeds) != len(self.seeds):
                    raise ValueError(f"draws: paired: forget set {spec.label} needs one seed per model seed "
                                     f"({len(self.seeds)}), got {spec.seeds}")
        return self

    def _tuning_model_seed_apart(self) -> None:
        """Tuning trains an original of its own (procedure 5): `tune.model_seed` is neither an
        evaluation model seed nor the retrain-floor seed of one."""
        seed = self.tune.model_seed
        if seed in self.seeds or seed - FLOOR_SEED_OFFSET in self.seeds:
            raise ValueError(f"tune.model_seed {seed} is a model seed (or retrain-floor seed) of the "
                             f"evaluation; tuning needs an original model of its own")


class Config(_ProtocolChecks):
    name: str
    dataset: str
    data_root: str | None = None
    # Train on a stratified subset of the training split (cifar10-cpu: 5,000 images so that a
    # model overfits, as ResNet-18 does on full CIFAR-10, in minutes on a CPU); drawn with subset_seed.
    train_subset: int | None = Field(None, ge=10)
    # Audit on a stratified subset of the test split (cifar10-cpu: every audit queries the target
    # and each reference model on D_F + the evaluation half of D_T, so the test size sets its cost).
    test_subset: int | None = Field(None, ge=10)
    subset_seed: int = 0
    model: ModelSpec
    # None: the recipe `unlearn train` chooses for the data (`training.default_recipe`, by input
    # shape), named by `jobs.with_recipe` once the data is loaded and written in the run's config.yaml.
    recipe: str | dict[str, Any] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # original-model seeds
    runs: int = Field(1, ge=1)  # unlearning runs per (model, forget set), seeds 0..runs-1
    # How the random draws combine into the runs a table's interval is over. "crossed": every model
    # seed with every forget seed, run seeds 0..runs-1. "paired": draw i is model seed seeds[i] with
    # forget seed seeds[i] of each random forget set and run seeds i*runs..i*runs+runs-1, so the
    # interval covers all three sources a user meets for the cost of len(seeds) draws.
    draws: Literal["crossed", "paired"] = "crossed"
    forget: list[ForgetSpec] = Field(min_length=1)
    settings: list[Literal["with_retain", "without_retain"]] = Field(default_factory=lambda: list(SETTINGS),
                                                                       min_length=1)
    methods: dict[str, dict[str, Any] | None] = Field(min_length=1)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)
    # Rows every table has besides Retrain: the untouched model and a second retrain (noise floor).
    reference_rows: list[Literal["original", "retrain-floor"]] = Field(
        default_factory=lambda: ["original", "retrain-floor"])
    device: str = "cpu"
    # Intra-op threads of torch in the bench process (None: torch's default, one per core). Small
    # models (digits) gain nothing from more than one, and on a shared machine extra threads
    # thrash: the digits MLP trained in 17 s with 1 thread and 107 s with 2 at load average 10.
    torch_threads: int | None = Field(None, ge=1)

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, value):
        from unlearn.training import get_recipe

        return value if value is None else _accepted_by(get_recipe, value)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value):
        from unlearn.data import available

        known = [d for d in available() if d != "imagefolder:PATH"]
        if value not in known and not value.startswith("imagefolder:"):
            raise ValueError(f"unknown dataset {value!r}; known: {', '.join(available())}")
        return value

    @model_validator(mode="after")
    def _tuning_is_separate(self):
        if not self.tune.trials:
            return self
        self._tuning_model_seed_apart()
        fractions = [s.fraction for s in self.forget if s.fraction is not None]
        for spec in self.forget:
            if spec.fraction is not None and spec.fraction + max(fractions) > 1 + 1e-9:
                raise ValueError(f"tune: forget set {spec.label} ({spec.fraction:.0%}) cannot be disjoint from the "
                                 f"largest tuning forget set ({max(fractions):.0%}): together more than the "
                                 f"training set; tune on at most half of it or set tune.trials: 0")
        if not self.audit.holdout:
            raise ValueError("tune: tuning scores on the validation half of the test split; it needs "
                             "audit.holdout: true (or tune.trials: 0)")
        for spec in self.forget:
            if spec.kind == "class":
                raise ValueError(f"tune: forget set {spec.label} has one draw (its classes), so no separate "
                                 f"tuning set exists; set tune.trials: 0 or tune on a random forget set")
            if self.tune.forget_seed in spec.seeds:
                raise ValueError(f"tune.forget_seed {self.tune.forget_seed} is an evaluation seed of forget set "
                                 f"{spec.label}; tuning needs a forget set of its own")
        objective = self.tune.objective or ("gap-rmia" if "rmia" in self.audit.attacks else "gap-mis")
        needed = {"gap-rmia": "rmia", "gap-mis": "mis"}[objective]
        if needed not in self.audit.attacks:
            raise ValueError(f"tune.objective {objective} needs the {needed} audit in audit.attacks")
        return self

    @property
    def tune_objective(self) -> str:
        return self.tune.objective or ("gap-rmia" if "rmia" in self.audit.attacks else "gap-mis")

    @property
    def dataset_spec(self) -> tuple:
        """What `jobs.dataset_of` needs to rebuild the protocol's dataset in any process."""
        return (self.dataset, self.data_root, self.train_subset, self.subset_seed, self.test_subset)

    def hparams(self, method: str) -> dict[str, Any]:
        return dict(self.methods.get(method) or {})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _node_at(root: yaml.Node | None, loc: tuple) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location (a key's node for mapping keys)."""
    node, found = root, root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            found, node = match[0][0], match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = node = node.value[part]
        else:
            break
    return found


def _where(source: str, root, loc: tuple) -> str:
    node = _node_at(root, loc)
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    return f"{source}{line}"


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate a protocol given as YAML text; raise `UnlearnInputError` naming file, line and key."""
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UnlearnInputError(f"{source}{line}: not valid YAML ({getattr(err, 'problem', err)})") from err
    if not isinstance(raw, dict):
        raise UnlearnInputError(f"{source}: a protocol is a YAML mapping (name, dataset, model, ...)")
    config = _validated(Config, raw, source, root)
    _check_methods(config, source, root)
    return config


def _validated(schema, raw: dict, source: str, root):
    """`raw` validated by the pydantic `schema`; its first problems as one `UnlearnInputError`
    naming file, line and key."""
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors()[:3]:
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            # pydantic appends the union member tried ("str", "dict[...]"); not a key of the file.
            loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float"))))
            key = ".".join(str(p) for p in loc) or "(top level)"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_where(source, root, loc)}: {key}: {msg}")
        raise UnlearnInputError("; ".join(problems)) from None


def _check_methods(config: Config, source: str, root) -> None:
    """Every method registered, every hyperparameter known and accepted by the constructor."""
    from unlearn import methods

    for name, hp in config.methods.items():
        where = _where(source, root, ("methods", name))
        if name == "retrain" and hp:
            raise UnlearnInputError(f"{where}: methods.retrain: the Retrain row is the oracle, trained with the "
                                    f"protocol's model, recipe and seeds; it takes no hyperparameters here")
        if name not in methods.available():
            from unlearn.lm import methods as lm_methods

            family = (f"{name!r} is a language-model method, and this is a classifier protocol (dataset: "
                      f"{config.dataset}; an LM protocol names a corpus)" if name in lm_methods.available()
                      else f"unknown method {name!r}")
            raise UnlearnInputError(f"{where}: methods.{name}: {family}; "
                                    f"registered: {', '.join(methods.available()) or 'none'}")
        try:
            methods.get(name, **(hp or {}))
        except UnlearnInputError as err:
            raise UnlearnInputError(f"{where}: methods.{name}: {err}") from None
        except (TypeError, ValueError) as err:
            raise UnlearnInputError(f"{where}: methods.{name}: bad hyperparameter value ({err})") from None
    for name in config.tune.space:
        if name not in config.methods:
            raise UnlearnInputError(f"{_where(source, root, ('tune', 'space', name))}: tune.space.{name}: "
                                    f"method not listed under `methods`")


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"config file {str(path)!r} does not exist")
    return parse_config(path.read_text(), source=str(path))
