"""Resolving a protocol into jobs, and the job functions that every executor runs.

A protocol expands into (forget set x forget seed) x model seed x setting x method x run jobs:
- *training* jobs: the original model per model seed and the retrained oracle per forget set and
  model seed, kept in the model bank;
- *oracle* jobs: the audit of each retrained model (the "Retrain" row, and the reference every
  gap is measured against);
- *reference rows*, audited against the oracle like any method: `original`, the untouched model
  (the gap of doing nothing), and `retrain-floor`, a second model retrained on the same D_R from
  another seed (`FLOOR_SEED_OFFSET` added to the model seed): the noise floor no method can beat;
- *run* jobs: one method applied to one original model in one setting, then audited.
A method that needs D_R is not run without it; it gets an explicit "n/a" record, as in the
papers' tables, rather than being dropped silently.

The job functions take and return plain data (model spec + state dict, JSON-able dicts), so the
local executor and Ray workers run exactly the same code on the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from unlearn.data import Dataset, ForgetSplit, class_forget, random_forget, split_holdout
from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.experiments.config import FLOOR_SEED_OFFSET, Config, ForgetSpec
from unlearn.experiments.provenance import record_environment
from unlearn.models import Classifier, true_class_confidence
from unlearn.models import per_sample_loss as losses_of

# Figures of the audit's "gap" entry and the histograms/ROC stored with every record.
HIST_BINS = 20
# The rows every table has besides the methods: the oracle, its noise floor and the untouched model.
ORACLE, FLOOR, ORIGINAL = "retrain", "retrain-floor", "original"
REFERENCE_ROWS = (FLOOR, ORIGINAL)


@dataclass(frozen=True)
class RunJob:
    """One row of one table: `method` ("retrain" = the oracle) on one model, forget set and setting."""

    method: str
    hparams_json: str
    setting: str
    forget: str
    forget_seed: int
    model_seed: int
    run_seed: int
    context: str = field(repr=False)  # digest of everything else the result depends on
    tuned: bool = False  # hyperparameters from the bench's tuning stage (else the protocol's)

    @property
    def id(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return f"{self.method}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    @property
    def hparams(self) -> dict[str, Any]:
        return json.loads(self.hparams_json)

    @property
    def split_key(self) -> tuple[str, int]:
        return (self.forget, self.forget_seed)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "hparams": self.hparams, "setting": self.setting, "forget": self.forget,
                "forget_seed": self.forget_seed, "model_seed": self.model_seed, "run_seed": self.run_seed,
                "tuned": self.tuned}


@dataclass
class Plan:
    config: Config
    dataset: Dataset
    splits: dict[tuple[str, int], ForgetSplit]
    validation: np.ndarray | None  # test indices methods may use as known non-members
    evaluation: np.ndarray          # test indices the audits evaluate on
    oracle: list[RunJob]
    runs: list[RunJob]  # the reference rows first, then the methods
    not_applicable: list[RunJob]
    # (split key, model seed) of every retrain: all pairs, or draw i's pairs when draws are paired
    units: list[tuple[tuple[str, int], int]] = field(default_factory=list)
    dataset_spec: tuple | None = None  # what `dataset_of` rebuilds `dataset` from (default: the config's)

    def __post_init__(self):
        if self.dataset_spec is None:
            self.dataset_spec = self.config.dataset_spec

    def originals(self) -> list[int]:
        return list(self.config.seeds)

    def retrains(self) -> list[tuple[tuple[str, int], int]]:
        return list(self.units)

    def floors(self) -> list[tuple[tuple[str, int], int]]:
        """(split, model seed) of every `retrain-floor` row; its model is trained with `floor_seed(seed)`."""
        return self.retrains() if FLOOR in self.config.reference_rows else []


def floor_seed(model_seed: int) -> int:
    return model_seed + FLOOR_SEED_OFFSET


def make_split(spec: ForgetSpec, n_train: int, labels: np.ndarray, seed: int,
               reserved: np.ndarray | None = None) -> ForgetSplit:
    """Forget set `seed` of `spec`; a random one is drawn outside `reserved` (the tuning forget sets)."""
    if spec.kind == "class":
        return class_forget(labels, spec.classes)
    if reserved is None or not len(reserved):
        return random_forget(n_train, fraction=spec.fraction, count=spec.count, seed=seed)
    size = forget_size(spec, n_train)
    free = np.setdiff1d(np.arange(n_train), reserved)
    if size > len(free):
        raise UnlearnInputError(f"forget set {spec.label}: {size} samples cannot be drawn disjoint from the tuning "
                                f"forget sets ({len(reserved)} of {n_train} training samples)")
    chosen = np.random.default_rng(seed).choice(free, size=size, replace=False)
    return ForgetSplit.from_forget(chosen, n_train)


def forget_size(spec: ForgetSpec, n_train: int) -> int:
    """The number of samples of a random forget set (as `random_forget` rounds it)."""
    return random_forget(n_train, fraction=spec.fraction, count=spec.count, seed=0).forget.size


def tuning_splits(config: Config, n_train: int) -> dict[str, ForgetSplit]:
    """The tuning forget set of each random forget set of the protocol, by label.

    All are prefixes of one permutation of the training set drawn with `tune.forget_seed`, so they
    nest and their union is the largest. Drawn before, and independently of, the evaluation forget
    sets, which are then drawn outside that union (`resolve`): a tuning set is disjoint from every
    evaluation set, and changing the evaluation sets changes nothing the tuning depends on.
    """
    order = np.random.default_rng([config.tune.forget_seed, n_train]).permutation(n_train)
    return {spec.label: ForgetSplit.from_forget(order[:forget_size(spec, n_train)], n_train)
            for spec in config.forget if spec.kind == "random"}


def reserved_for_tuning(config: Config, n_train: int) -> np.ndarray:
    """Training indices no evaluation forget set may hold: the union of the tuning forget sets,
    when the protocol tunes (`tune.trials` > 0); else none."""
    if not config.tune.trials:
        return np.zeros(0, dtype=np.int64)
    sets = [s.forget for s in tuning_splits(config, n_train).values()]
    return max(sets, key=len) if sets else np.zeros(0, dtype=np.int64)


def context_digest(config: Config, dataset: Dataset) -> str:
    blob = {"dataset": dataset.fingerprint, "model": config.model.model_dump(), "recipe": config.recipe,
            "forget": [f.model_dump() for f in config.forget], "audit": config.audit.model_dump()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def draw_units(config: Config) -> list[tuple[str, int, int, int]]:
    """(forget set label, forget seed, model seed, first run seed) of every draw of the protocol.

    Crossed: every forget seed with every model seed, run seeds from 0. Paired: draw i takes model
    seed `seeds[i]`, each random forget set's i-th seed (a class forget set has one draw) and run
    seeds from i × runs, so each draw is a fresh draw of all three."""
    units = []
    for spec in config.forget:
        if config.draws == "crossed":
            units += [(spec.label, f, m, 0) for f in spec.seeds for m in config.seeds]
        else:
            forget_seeds = spec.seeds if spec.kind == "random" else [spec.seeds[0]] * len(config.seeds)
            units += [(spec.label, f, m, i * config.runs) for i, (f, m) in enumerate(zip(forget_seeds, config.seeds))]
    return units


def resolve(config: Config, dataset: Dataset, tuned: dict[tuple[str, str, str], dict] | None = None,
            reserved: np.ndarray | None = None) -> Plan:
    """Every job of a protocol, in the order they depend on each other.

    `tuned` maps (forget set label, setting, method) to the hyperparameters the tuning stage chose;
    those jobs run with them (and say so), every other job with the protocol's values. Random
    forget sets are drawn outside `reserved` (default: `reserved_for_tuning`, the tuning forget sets).
    """
    from unlearn import methods

    n_train = len(dataset.train)
    labels = dataset.train.y.numpy()
    reserved = reserved_for_tuning(config, n_train) if reserved is None else reserved
    specs = {spec.label: spec for spec in config.forget}
    units = draw_units(config)
    splits = {}
    for label, forget_seed, _, _ in units:
        if (label, forget_seed) not in splits:
            splits[(label, forget_seed)] = make_split(specs[label], n_train, labels, forget_seed, reserved)
    if config.audit.holdout:
        validation, evaluation = split_holdout(dataset.test.y.numpy(), seed=0)
    else:
        validation, evaluation = None, np.arange(len(dataset.test))
    context = context_digest(config, dataset)
    oracle, runs, not_applicable = draw_jobs(config, units, context, methods.get_class, tuned)
    return Plan(config, dataset, splits, validation, evaluation, oracle, runs, not_applicable,
                units=[((label, f), m) for label, f, m, _ in units])


def draw_jobs(config, units, context: str, method_class, tuned: dict | None = None
              ) -> tuple[list[RunJob], list[RunJob], list[RunJob]]:
    """(oracle, runs, not applicable) of every draw `units` of a protocol, classifier or LM: per
    draw the oracle, one job per reference row (one model each, the same in both settings, like
    the oracle), then every method (`method_class(name)`: its class in the protocol's family) in
    every setting and run, with its tuned values when `tuned` has them."""
    oracle, runs, not_applicable = [], [], []
    for label, forget_seed, model_seed, first_run in units:
        oracle.append(RunJob(ORACLE, "{}", "with_retain", label, forget_seed, model_seed, 0, context))
        for row in config.reference_rows:
            hp = json.dumps({"seed": floor_seed(model_seed)} if row == FLOOR else {})
            runs.append(RunJob(row, hp, "with_retain", label, forget_seed, model_seed, 0, context))
        for name in config.methods:
            if name == ORACLE:  # the oracle row; it is the same model in both settings
                continue
            cls = method_class(name)
            for setting in config.settings:
                chosen = (tuned or {}).get((label, setting, name))
                hp = json.dumps(config.hparams(name) if chosen is None else chosen, sort_keys=True)
                for run in range(first_run, first_run + config.runs):
                    job = RunJob(name, hp, setting, label, forget_seed, model_seed, run, context,
                                 tuned=chosen is not None)
                    needs_retain = cls.requires_retain and setting == "without_retain"
                    (not_applicable if needs_retain else runs).append(job)
    return oracle, runs, not_applicable


# ---- payloads: what crosses a process boundary -------------------------------------------------

def model_payload(model: Classifier) -> dict[str, Any]:
    return {"spec": model.spec, "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def model_from_payload(payload: dict[str, Any], device: str = "cpu") -> Classifier:
    spec = payload["spec"]
    model = Classifier(spec["arch"], spec["num_classes"], spec["input_shape"], spec["mean"], spec["std"],
                       spec["classes"], spec["arch_args"], spec.get("training"))
    model.load_state_dict(payload["state"])
    return model.to(device).eval()


_DATASETS: dict[tuple, Dataset] = {}


def dataset_of(name: str, root: str | None = None, train_subset: int | None = None, subset_seed: int = 0,
               test_subset: int | None = None, validation_only: bool = False) -> Dataset:
    """The protocol's dataset, loaded once per process (Ray workers are long-lived and run many jobs).

    With `train_subset` (`test_subset`), the training (test) split is a stratified subset of that
    size, drawn with `subset_seed`; the fingerprint names the subsets, so the bank never confuses
    models trained or audited on different ones. `validation_only` keeps only the validation half
    of the test split (`validation_half`): the tuning stage's dataset, so that no model it trains
    (RMIA's reference models on train + test included) holds an evaluation-half sample.
    """
    from unlearn import data

    key = (name, root, train_subset, subset_seed, test_subset)
    if key not in _DATASETS:
        dataset = data.load(name, root=root)
        if train_subset is not None:
            dataset = _subset(dataset, "train", train_subset, subset_seed)
        if test_subset is not None:
            dataset = _subset(dataset, "test", test_subset, subset_seed)
        _DATASETS[key] = dataset
    return validation_half(_DATASETS[key]) if validation_only else _DATASETS[key]


def validation_half(dataset: Dataset) -> Dataset:
    """`dataset` with its test split cut to the validation half of `split_holdout` (derived afresh
    from the dataset given, never cached apart from it, so it always reflects that dataset)."""
    validation, _evaluation = split_holdout(dataset.test.y.numpy(), seed=0)
    return replace(dataset, test=dataset.test.subset(validation), fingerprint=f"{dataset.fingerprint}-validation-half")


def with_recipe(config: Config) -> Config:
    """`config` with its recipe named: a protocol without `recipe:` gets the one `unlearn train`
    chooses for the same data (`training.default_recipe`, by input shape)."""
    from unlearn.training import default_recipe

    if config.recipe is not None:
        return config
    return config.model_copy(update={"recipe": default_recipe(dataset_of(*config.dataset_spec))})


def _subset(full: Dataset, split: str, size: int, seed: int) -> Dataset:
    from sklearn.model_selection import train_test_split

    whole = getattr(full, split)
    if not 0 < size < len(whole):
        raise UnlearnInputError(f"{split}_subset must lie in [1, {len(whole) - 1}] for {full.name}, got {size}")
    labels = whole.y.numpy()
    chosen, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    chosen = np.sort(chosen)
    digest = hashlib.sha256(chosen.astype(np.int64).tobytes()).hexdigest()[:12]
    # The training subset keeps its historical fingerprint suffix, so banks built before test
    # subsets existed still serve their models.
    suffix = "subset" if split == "train" else "test-subset"
    return replace(full, **{split: whole.subset(chosen)}, fingerprint=f"{full.fingerprint}-{suffix}-{digest}")


# ---- job functions ----------------------------------------------------------------------------

def train_job(dataset_spec: tuple, arch: str, arch_args: dict, indices: np.ndarray,
              recipe: dict, seed: int, device: str = "cpu", name: str = "training") -> dict[str, Any]:
    """Train one model from scratch; return its payload and training time (for the bank the driver keeps)."""
    from unlearn.training import train

    dataset = dataset_of(*dataset_spec)
    start = time.perf_counter()
    model = train(arch, dataset, indices, recipe, seed=seed, device=device, arch_args=arch_args,
                  progress=False, name=name)
    return {"model": model_payload(model), "seconds": time.perf_counter() - start}


def _curves(model, dataset: Dataset, split: ForgetSplit, evaluation: np.ndarray) -> dict[str, Any]:
    """Confidence histograms (D_R, D_F, D_T) and the loss-threshold attack's ROC (D_F vs D_T)."""
    from unlearn.audit.scores import roc_on_grid

    parts = {"retain": dataset.train.subset(split.retain), "forget": dataset.train.subset(split.forget),
             "test": dataset.test.subset(evaluation)}
    edges = np.linspace(0, 1, HIST_BINS + 1)
    hist = {k: np.histogram(true_class_confidence(model, d).numpy(), bins=edges)[0].tolist()
            for k, d in parts.items()}
    # Members have low loss: score = -loss, forget samples are the positives.
    loss_roc = roc_on_grid(-losses_of(model, parts["forget"]).numpy(), -losses_of(model, parts["test"]).numpy())
    return {"hist": hist, "hist_edges": edges.tolist(), "roc": {"loss": loss_roc}}


def _audit(model, dataset: Dataset, split: ForgetSplit, config_audit: dict, evaluation, reference, bank_root,
           device, method=None, with_retain: bool = True, **method_context) -> dict[str, Any]:
    from unlearn import audit
    from unlearn.bank import ModelBank

    return audit.evaluate(model, dataset, split, attacks=tuple(config_audit["attacks"]), reference=reference,
                          bank=ModelBank(bank_root), n_reference=config_audit["n_reference"],
                          seed=config_audit.get("reference_seed", 0), rmia_settings=config_audit.get("rmia"),
                          n_models=config_audit.get("n_models", 8), n_shadow=config_audit.get("n_shadow", 16),
                          method=method, with_retain=with_retain, device=device, evaluation=evaluation, roc=True,
                          **method_context)


def run_job(job: RunJob, dataset_spec: tuple, split: ForgetSplit, validation: np.ndarray | None,
            evaluation: np.ndarray, model: dict[str, Any], audit_spec: dict, reference: dict | None, retrain_seconds: float,
            bank_root: str, device: str = "cpu") -> dict[str, Any]:
    """Unlearn (unless `job` is the oracle) and audit; return the job's JSON record.

    `model` is the payload of the original model (of the retrained model for the oracle job),
    `reference` the oracle's metrics, against which the audit measures the gap.
    """
    from unlearn import audit, methods
    from unlearn.bank import ModelBank

    dataset = dataset_of(*dataset_spec)
    # Arrays from Ray's object store are read-only; torch warns on indexing with them.
    split = ForgetSplit(np.array(split.forget), np.array(split.retain))
    validation = None if validation is None else np.array(validation)
    evaluation = np.array(evaluation)
    record: dict[str, Any] = {"id": job.id, **job.describe(), "retrain_seconds": retrain_seconds,
                              "forget_digest": hashlib.sha256(np.sort(split.forget).astype(np.int64).tobytes())
                              .hexdigest()[:12],
                              "sizes": {"forget": len(split.forget), "retain": len(split.retain),
                                        "test": len(evaluation)}}
    net = model_from_payload(model, device)
    # The method the audit's method attacks (U-LiRA, ε score) judge: Retrain for the floor; doing
    # nothing is no registered method, so the `original` row has no such figures.
    method = None if job.method == ORIGINAL else methods.get(ORACLE) if job.method == FLOOR else \
        methods.get(job.method, **job.hparams)
    if method is None:
        audit_spec = {**audit_spec, "attacks": [a for a in audit_spec["attacks"] if a not in audit.METHOD_ATTACKS]}
    context = {} if validation is None else {"holdout": dataset.test.subset(validation)}
    if job.method in (ORACLE, FLOOR):
        # `model` is the retrained model itself (the floor's from another seed); its cost is a retrain.
        record.update(status="ok", seconds=retrain_seconds, stats=None)
        unlearned = net
    elif job.method == ORIGINAL:  # doing nothing costs nothing
        record.update(status="ok", seconds=0.0, stats=None)
        unlearned = net
    else:
        forget = dataset.train.subset(split.forget)
        retain = dataset.train.subset(split.retain) if job.setting == "with_retain" else None
        context["bank"] = ModelBank(bank_root)
        torch.manual_seed(job.run_seed)
        start = time.perf_counter()
        try:
            unlearned = method.unlearn(net, forget, retain, seed=job.run_seed, device=device, **context)
        except (DivergenceError, UnlearnInputError) as err:
            # A result, not a crash: the table shows the method failed with these hyperparameters.
            record.update(status="failed", error=f"{type(err).__name__}: {err}",
                          seconds=time.perf_counter() - start, environment=record_environment(device))
            return record
        record.update(status="ok", seconds=time.perf_counter() - start, stats=getattr(method, "stats_", None))
    start = time.perf_counter()
    context.pop("bank", None)  # the audit passes its own bank to the method's shadow runs
    metrics = _audit(unlearned, dataset, split, audit_spec, evaluation, reference, bank_root, device, method=method,
                     with_retain=job.setting == "with_retain", **context)
    record["audit_seconds"] = time.perf_counter() - start
    curves = _curves(unlearned, dataset, split, evaluation)
    # Curves the audit returns (if any) go with the plots, not into the table.
    for attack, values in list(metrics.items()):
        if isinstance(values, dict) and "fpr" in values and "tpr" in values:
            curves["roc"][attack] = {"fpr": list(values.pop("fpr")), "tpr": list(values.pop("tpr"))}
    if job.method == ORACLE:
        metrics["gap"] = audit.gaps(metrics, metrics)  # the oracle is its own reference: all zeros
    record.update(metrics=metrics, flat=audit.flatten(metrics), environment=record_environment(device), **curves)
    return record


def crash_record(job: RunJob, err: BaseException) -> dict[str, Any]:
    """What the driver reports (and does not store) when a job fails unexpectedly."""
    return {"id": job.id, **job.describe(), "status": "crashed", "error": f"{type(err).__name__}: {err}",
            "traceback": "".join(traceback.format_exception(err))}
