"""SISA: exact unlearning by Sharded, Isolated, Sliced, Aggregated training (Bourtoule et al., S&P 2021).

The training set is cut into k disjoint shards, one model per shard, and each shard into r
slices. A shard's model is trained in r stages: stage j continues from the checkpoint of stage
j − 1 on the union of slices 0..j, and its weights are checkpointed. A deletion touches only the
shards holding a deleted point, and each of those is retrained from the checkpoint before the
earliest slice that held one. Prediction aggregates the shard models by majority vote (ties go to
the lowest class) or by averaged probabilities. The result is *exact*: after a deletion, the
ensemble is the one SISA would have trained from scratch without those points (same seeds), which
`tests/test_sisa.py` checks bit for bit.

Choices made here (not fixed by the paper):
- A sample's shard and slice depend only on its own index and the seed (a seeded uniform key per
  training index), so removing points never moves the others; shards are balanced in
  expectation, not exactly.
- Each stage trains ⌈2E/(r+1)⌉ epochs of the recipe's E, so that slicing costs about what training
  each shard for E epochs would (the paper's rule that slicing must not raise training cost).
- scikit-learn estimators (any `clone`-able classifier: random forest, logistic regression, ...) have
  no checkpoints to continue from, so for them slices are ignored: a deletion refits the shard's
  estimator from scratch on its remaining data. Inputs are flattened to (N, features) in [0, 1].

    sisa = SISA("mlp", shards=5, slices=4).fit(dataset)
    cost = sisa.delete(forget_indices)          # {"fraction": ..., "shards_retrained": ...}
    labels = sisa.predict(dataset.test.x)
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearn.data import ArrayDataset, Dataset, as_float
from unlearn.errors import UnlearnInputError
from unlearn.files import atomic_path
from unlearn.methods.base import Method, register
from unlearn.models import create
from unlearn.training import default_arch_args, default_recipe, fit, get_recipe

AGGREGATIONS = ("vote", "mean")
SISA_FORMAT = "unlearn.sisa/1"
SKLEARN_SHORTCUTS = ("random-forest", "logistic-regression")


def _sklearn_estimator(name: str):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return RandomForestClassifier(n_estimators=100) if name == "random-forest" else LogisticRegression(max_iter=1000)


class SISA:
    """A sharded, sliced ensemble that can forget training points exactly.

    Parameters
    ----------
    estimator : an architecture name of `unlearn.models` ("mlp", "cnn", ...), a scikit-learn
        classifier (cloned per shard), or "random-forest" / "logistic-regression".
    shards : k, number of disjoint shards (paper: 5 to 20 depending on the dataset).
    slices : r, checkpointed slices per shard (torch models only).
    aggregation : "vote" (the paper's default) or "mean" (averaged probabilities).
    recipe : training recipe of the torch shard models (default: the dataset's recipe).
    arch_args : architecture arguments (default: the dataset's defaults).
    seed : seeds the assignment, every shard's initialisation and every stage's shuffling.
    device : where torch models train.

    Attributes after `fit`: `indices_` (current training indices), `shard_`/`slice_` (assignment
    per training index of the dataset), `deletions_` (a cost record per `delete`).

    References
    ----------
    Bourtoule, Chandrasekaran, Choquette-Choo, Jia, Travers, Zhang, Lie, Papernot,
    "Machine Unlearning", IEEE S&P 2021.
    """

    def __init__(self, estimator: Any = "mlp", shards: int = 5, slices: int = 4, aggregation: str = "vote",
                 recipe=None, arch_args: dict | None = None, seed: int = 0, device: str | torch.device = "cpu"):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (shards, slices)):
            raise UnlearnInputError(f"sisa: shards and slices must be integers >= 1, got {shards} and {slices}")
        if aggregation not in AGGREGATIONS:
            raise UnlearnInputError(f"sisa: aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if isinstance(estimator, str) and estimator in SKLEARN_SHORTCUTS:
            estimator = _sklearn_estimator(estimator)
        if not isinstance(estimator, str) and not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise UnlearnInputError(f"sisa: estimator must be an architecture name or a scikit-learn classifier, "
                                    f"got {type(estimator).__name__}")
        self.estimator, self.shards, self.slices, self.aggregation = estimator, int(shards), int(slices), aggregation
        self.recipe, self.arch_args, self.seed, self.device = recipe, arch_args, seed, torch.device(device)

    # -- what is where ------------------------------------------------------------------------------
    @property
    def is_torch(self) -> bool:
        return isinstance(self.estimator, str)

    @property
    def n_slices(self) -> int:
        return self.slices if self.is_torch else 1  # no checkpoints to continue a scikit-learn fit from

    def _stage_epochs(self) -> int:
        return max(1, math.ceil(2 * self.recipe_.epochs / (self.n_slices + 1)))

    def _stage_members(self, shard: int, stage: int) -> np.ndarray:
        """Current training indices of `shard` in slices 0..stage, ascending (the stage's data)."""
        idx = self.indices_
        return idx[(self.shard_[idx] == shard) & (self.slice_[idx] <= stage)]

    def _assign(self, n: int) -> None:
        """Shard and slice of every training index: one seeded key per index, independent of the others."""
        key = np.random.default_rng(self.seed).random(n)
        position = np.minimum((key * self.shards * self.n_slices).astype(np.int64), self.shards * self.n_slices - 1)
        self.shard_, self.slice_ = position // self.n_slices, position % self.n_slices

    # -- training -----------------------------------------------------------------------------------
    def fit(self, dataset: Dataset, indices=None) -> SISA:
        """Train the ensemble on `dataset.train[indices]` (all of it by default)."""
        n = len(dataset.train)
        indices = np.arange(n) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        if indices.size == 0 or indices.min() < 0 or indices.max() >= n:
            raise UnlearnInputError(f"sisa: training indices must be non-empty and lie in [0, {n})")
        self.dataset_ = dataset
        self.num_classes_ = dataset.num_classes
        self.indices_ = indices
        self._assign(n)
        if self.is_torch:
            self.recipe_ = get_recipe(self.recipe if self.recipe is not None else default_recipe(dataset))
            self.arch_args_ = default_arch_args(dataset.name, self.estimator, self.arch_args)
        self.models_: list[Any] = [None] * self.shards
        self.checkpoints_: list[list[dict | None]] = [[None] * self.n_slices for _ in range(self.shards)]
        self.deletions_: list[dict] = []
        start = time.perf_counter()
        self.fit_sample_passes_ = sum(self._train_shard(s, 0) for s in range(self.shards))
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _train_shard(self, shard: int, first_stage: int) -> int:
        """(Re)train `shard` from the checkpoint before `first_stage`; return samples × epochs spent."""
        train = self.dataset_.train
        if not self.is_torch:
            from sklearn.base import clone

            members = self._stage_members(shard, 0)
            self.models_[shard] = None
            if members.size == 0:
                return 0
            est = clone(self.estimator)
            if "random_state" in est.get_params():
                est.set_params(random_state=self.seed * 1000 + shard)
            est.fit(_features(train.x[members]), train.y[members].numpy())
            self.models_[shard] = est
            return int(members.size)
        torch.manual_seed(self.seed * 1000 + shard)
        model = create(self.estimator, self.dataset_, **self.arch_args_).to(self.device)
        if first_stage > 0:
            model.load_state_dict(self.checkpoints_[shard][first_stage - 1])
        epochs, spent = self._stage_epochs(), 0
        recipe = self.recipe_.with_(epochs=epochs)
        for stage in range(first_stage, self.n_slices):
            members = self._stage_members(shard, stage)
            if members.size:  # an empty stage leaves the model as it was (its checkpoint repeats)
                fit(model, train.subset(members), recipe, seed=self.seed * 100_003 + shard * 101 + stage,
                    device=self.device, name=f"sisa shard {shard} slice {stage}", progress=False)
                spent += epochs * int(members.size)
            self.checkpoints_[shard][stage] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.models_[shard] = model.eval() if self._stage_members(shard, self.n_slices - 1).size else None
        return spent

    def full_cost(self) -> int:
        """Samples × epochs to train the current ensemble from scratch (the cost a deletion saves)."""
        per_stage = self._stage_epochs() if self.is_torch else 1
        return sum(per_stage * int(self._stage_members(s, j).size)
                   for s in range(self.shards) for j in range(self.n_slices))

    # -- unlearning ---------------------------------------------------------------------------------
    def delete(self, indices) -> dict:
        """Forget training indices exactly; return the retraining cost of this deletion."""
        self._check_fitted()
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size == 0:
            raise UnlearnInputError("sisa: nothing to delete (empty index set)")
        if np.unique(indices).size != indices.size:
            raise UnlearnInputError("sisa: the deletion request has duplicate indices")
        absent = indices[~np.isin(indices, self.indices_)]
        if absent.size:
            raise UnlearnInputError(f"sisa: {absent.size} indices are not in the ensemble's training set, "
                                    f"e.g. {int(absent[0])}")
        if np.setdiff1d(self.indices_, indices).size == 0:
            raise UnlearnInputError("sisa: the deletion would remove every training point")
        # The earliest slice holding a deleted point, per shard: retraining starts just before it.
        first_stage = {}
        for shard, stage in zip(self.shard_[indices].tolist(), self.slice_[indices].tolist()):
            first_stage[shard] = min(stage, first_stage.get(shard, stage))
        self.indices_ = np.setdiff1d(self.indices_, indices)
        start = time.perf_counter()
        spent = sum(self._train_shard(shard, stage) for shard, stage in sorted(first_stage.items()))
        seconds = time.perf_counter() - start
        full = self.full_cost()
        record = {"n_deleted": int(indices.size), "shards_retrained": len(first_stage), "shards": self.shards,
                  "sample_passes": spent, "full_sample_passes": full,
                  "fraction_of_full_retrain": spent / full if full else float("nan"),
                  "cost_saved": 1.0 - spent / full if full else float("nan"), "seconds": seconds}
        self.deletions_.append(record)
        return record

    # -- prediction ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise UnlearnInputError("sisa: call fit(dataset) first")

    @torch.no_grad()
    def shard_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(shards with data, N, classes) class probabilities of every non-empty shard model."""
        self._check_fitted()
        out = []
        for model in self.models_:
            if model is None:
                continue
            if self.is_torch:
                probs = torch.cat([model(as_float(x[i:i + 1024].to(self.device))).softmax(1).cpu()
                                   for i in range(0, len(x), 1024)])
            else:
                probs = torch.zeros(len(x), self.num_classes_)
                probs[:, torch.as_tensor(model.classes_)] = torch.as_tensor(
                    model.predict_proba(_features(x)), dtype=torch.float32)
            out.append(probs)
        return torch.stack(out)

    def predict_proba(self, x: torch.Tensor | ArrayDataset) -> torch.Tensor:
        """(N, classes): vote fractions ("vote") or mean probabilities ("mean")."""
        x = x.x if isinstance(x, ArrayDataset) else x
        probs = self.shard_probabilities(x)
        if self.aggregation == "mean":
            return probs.mean(0)
        votes = nn.functional.one_hot(probs.argmax(2), self.num_classes_).float()
        return votes.mean(0)

    def predict(self, x: torch.Tensor | ArrayDataset) -> torch.Tensor:
        """Predicted labels; ties of the vote go to the lowest class index."""
        return self.predict_proba(x).argmax(1)

    def as_module(self) -> SISAModule:
        """The ensemble as an `nn.Module` mapping inputs to log aggregated scores (for the audits)."""
        return SISAModule(self)

    def tensors(self, checkpoints: bool = False) -> dict[str, torch.Tensor]:
        """What `save` writes: the shard models, and with `checkpoints` the slice checkpoints and indices."""
        self._check_fitted()
        if not self.is_torch:
            raise UnlearnInputError("sisa: an ensemble of scikit-learn estimators cannot be written as "
                                    "safetensors; keep it in Python (or use joblib on your own files)")
        tensors = {f"shard{k}.{name}": value.detach().cpu().contiguous()
                   for k, model in enumerate(self.models_) if model is not None
                   for name, value in model.state_dict().items()}
        if checkpoints:
            tensors["indices"] = torch.as_tensor(self.indices_, dtype=torch.int64)
            tensors.update({f"checkpoint{k}.{j}.{name}": value.detach().cpu().contiguous()
                            for k, shard in enumerate(self.checkpoints_) for j, state in enumerate(shard)
                            if state is not None for name, value in state.items()})
        return tensors

    def file_spec(self, checkpoints: bool = False) -> dict:
        """The metadata `save` writes beside the tensors (what `load` needs to rebuild the ensemble)."""
        return {"arch": self.estimator, "arch_args": self.arch_args_, "shards": self.shards, "slices": self.slices,
                "aggregation": self.aggregation, "seed": self.seed, "recipe": self.recipe_.to_dict(),
                "present": [k for k, m in enumerate(self.models_) if m is not None],
                "n_train": int(self.indices_.size), "deletions": self.deletions_,
                "dataset_size": int(len(self.shard_)), "checkpoints": checkpoints}

    def save(self, path, checkpoints: bool = False, extra: dict | None = None, atomic: bool = True) -> Path:
        """Write the shard models (torch only) as one safetensors file, format `unlearn.sisa/1`.

        Without `checkpoints` a loaded ensemble predicts but cannot delete again; with them (and the
        current training indices) it can, exactly as the ensemble that was saved (`SISA.load`).
        `extra` adds keys to the metadata (the request ledger's record); `atomic=False` writes
        `path` in place (a staged temporary file that its caller moves).
        """
        from safetensors.torch import save_file

        tensors = self.tensors(checkpoints)
        path = Path(path)
        metadata = {"format": SISA_FORMAT, "spec": json.dumps({**self.file_spec(checkpoints), **(extra or {})})}
        if not atomic:
            save_file(tensors, str(path), metadata=metadata)
            return path
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path, dataset: Dataset, device: str | torch.device = "cpu") -> SISA:
        """Read an ensemble written by `save`: for prediction, and for deletion if saved with checkpoints."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise UnlearnInputError(f"SISA file {str(path)!r} does not exist")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != SISA_FORMAT:
                raise UnlearnInputError(f"{path}: not a SISA ensemble file")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        spec = json.loads(meta["spec"])
        sisa = cls(spec["arch"], spec["shards"], spec["slices"], spec["aggregation"], recipe=spec["recipe"],
                   arch_args=spec["arch_args"], seed=spec["seed"], device=device)
        sisa.dataset_, sisa.num_classes_ = dataset, dataset.num_classes
        sisa.recipe_, sisa.arch_args_ = get_recipe(spec["recipe"]), dict(spec["arch_args"])
        sisa.deletions_ = list(spec.get("deletions", []))
        sisa.models_ = [None] * sisa.shards
        for k in spec["present"]:
            model = create(spec["arch"], dataset, **spec["arch_args"])
            prefix = f"shard{k}."
            model.load_state_dict({n[len(prefix):]: v for n, v in tensors.items() if n.startswith(prefix)})
            sisa.models_[k] = model.to(sisa.device).eval()
        if spec.get("checkpoints"):  # a full state: this ensemble can delete again
            if spec["dataset_size"] != len(dataset.train):
                raise UnlearnInputError(f"{path}: SISA ensemble of a {spec['dataset_size']}-sample training set, "
                                        f"not of {dataset.name} ({len(dataset.train)})")
            sisa._assign(spec["dataset_size"])
            sisa.indices_ = tensors["indices"].numpy().astype(np.int64)
            sisa.checkpoints_ = [[None] * sisa.n_slices for _ in range(sisa.shards)]
            for k in range(sisa.shards):
                for j in range(sisa.n_slices):
                    prefix = f"checkpoint{k}.{j}."
                    state = {n[len(prefix):]: v for n, v in tensors.items() if n.startswith(prefix)}
                    sisa.checkpoints_[k][j] = state or None
        return sisa


def _features(x: torch.Tensor) -> np.ndarray:
    return as_float(x).reshape(len(x), -1).numpy()


class SISAModule(nn.Module):
    """An eval-only `nn.Module` view of a SISA ensemble: forward(x) = log of the aggregated scores."""

    def __init__(self, sisa: SISA):
        super().__init__()
        self.sisa = sisa
        # `unlearn.models.logits` reads the device from the first parameter; the ensemble has none of its own.
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Clamped so a class with no vote gets a finite, very low score rather than −inf.
        return self.sisa.predict_proba(x.cpu()).clamp_min(1e-6).log().to(x.device)


@register
class SISAMethod(Method):
    """`methods.get("sisa")`: SISA through the common interface.

    SISA cannot unlearn a model it did not train: it needs its own sharded ensemble, trained on all
    of D. So `unlearn(model, forget, retain)` trains a SISA ensemble with the given model's
    architecture, arguments and recorded recipe (or a scikit-learn `estimator`) on D = D_R ∪ D_F,
    deletes D_F, and returns the ensemble as an `nn.Module` (`SISAModule`, eval only); the
    deletion's cost record is left in `stats_`. With the context arguments `dataset` and `split`
    (the CLI passes them) the shards are keyed by the dataset's training indices; otherwise by the
    position in D_R followed by D_F. It needs D_R (there is no SISA without the data it shards).

    Parameters: shards, slices, aggregation as in `SISA`; estimator: "model" (the given model's
    architecture), "random-forest" or "logistic-regression".
    """

    name = "sisa"
    requires_retain = True

    def __init__(self, shards: int = 5, slices: int = 4, aggregation: str = "vote", estimator: str = "model"):
        self.shards, self.slices, self.aggregation, self.estimator = shards, slices, aggregation, estimator

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        if self.estimator != "model" and self.estimator not in SKLEARN_SHORTCUTS:
            raise UnlearnInputError(f"sisa: estimator must be 'model' or one of {SKLEARN_SHORTCUTS}, "
                                    f"got {self.estimator!r}")
        spec = getattr(model, "spec", None)
        if spec is None:
            raise UnlearnInputError("sisa needs an unlearn Classifier (its spec names the architecture to shard)")
        training = spec.get("training") or {}
        dataset, split = context.get("dataset"), context.get("split")
        if dataset is None or split is None:  # D from the sets themselves: D_R first, then D_F
            x = torch.cat([retain.x, forget.x.to(retain.x.dtype)])
            dataset = Dataset(str(training.get("dataset", "data")), ArrayDataset(x, torch.cat([retain.y, forget.y])),
                              ArrayDataset(x[:0], retain.y[:0]), tuple(spec["classes"]) or
                              tuple(str(c) for c in range(spec["num_classes"])), "", tuple(spec["mean"]),
                              tuple(spec["std"]))
            to_delete = np.arange(len(retain), len(retain) + len(forget))
        else:
            to_delete = split.forget
        estimator = spec["arch"] if self.estimator == "model" else self.estimator
        sisa = SISA(estimator, self.shards, self.slices, self.aggregation, recipe=training.get("recipe"),
                    arch_args=spec.get("arch_args"), seed=int(training.get("seed", seed)), device=device)
        sisa.fit(dataset)
        self.stats_ = {"fit_sample_passes": sisa.fit_sample_passes_, "fit_seconds": sisa.fit_seconds_,
                       "deletion": sisa.delete(to_delete)}
        module = sisa.as_module()
        # The audits read the architecture and recipe from `spec` (RMIA trains reference models with
        # them): they get the single model's, so reference models are single models, not ensembles.
        module.spec = {**spec, "training": {**training, "sisa": {"shards": self.shards, "slices": self.slices,
                                                                 "aggregation": self.aggregation,
                                                                 "estimator": str(estimator)}}}
        return module
