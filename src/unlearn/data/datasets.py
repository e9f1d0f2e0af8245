"""Datasets as tensors in memory, found by name.

A dataset is two `ArrayDataset`s (train, test) holding inputs in pixel space and int64 labels.
Inputs stay in their compact storage type (uint8 for images, float32 for tabular data) and are
turned into float32 in [0, 1] per batch by `as_float`, so CIFAR-10 costs 150 MB, not 600 MB.
Normalisation is not applied here: it is a layer inside every model (see `unlearn.models`), so
adversarial perturbations are measured on real inputs.

Names: `mnist1d` (the embedded default: MNIST-1D generated offline), `digits` (scikit-learn's
bundled 8x8 digits, no download), `cifar10` (an image folder or
its `.tar.gz`, given by `root=` or `$UNLEARN_CIFAR10`), `imagefolder:PATH` for any folder of the
same layout, and optional public downloads through torchvision / Hugging Face `datasets`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.files import atomic_path


@dataclass(frozen=True)
class ArrayDataset:
    """Inputs `x` (N, C, H, W) or (N, D), uint8 or float32 in [0, 1], and labels `y` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise UnlearnInputError(f"inputs and labels differ in length: {len(self.x)} vs {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices) -> ArrayDataset:
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ArrayDataset(self.x[index], self.y[index])

    def inputs(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """All inputs as float32 in [0, 1] on `device`."""
        return as_float(self.x.to(device))


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Pixel-space float32 in [0, 1] from uint8 or float storage."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


@dataclass(frozen=True)
class Dataset:
    """A named dataset: train and test splits, class names, and what identifies its content."""

    name: str
    train: ArrayDataset
    test: ArrayDataset
    classes: tuple[str, ...]
    # Content fingerprint: changes whenever the source data change; keys the model bank.
    fingerprint: str
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register(name: str):
    def wrap(fn):
        _LOADERS[name] = fn
        return fn

    return wrap


def available() -> list[str]:
    return sorted(_LOADERS) + ["imagefolder:PATH"]


def load(name: str, root: str | os.PathLike | None = None, **kwargs) -> Dataset:
    """Load a dataset by name (`digits`, `cifar10`, `imagefolder:PATH`, `torchvision:cifar100`, ...)."""
    if name.startswith("imagefolder:"):
        return load_imagefolder(name.split(":", 1)[1], name=name)
    if name in _LOADERS:
        return _LOADERS[name](root=root, **kwargs)
    raise UnlearnInputError(f"unknown dataset {name!r}; known: {', '.join(available())}")


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # Every 4th sample is plenty for first and second moments and keeps a CIFAR-10 load fast;
    # a strided (not leading) subset, because image folders are stored sorted by class.
    xf = as_float(x[::4])
    dims = [0] + list(range(2, xf.dim()))
    if xf.dim() == 2:  # tabular: one mean/std for all features keeps the model input-agnostic
        return (float(xf.mean()),), (float(xf.std().clamp_min(1e-6)),)
    return tuple(xf.mean(dims).tolist()), tuple(xf.std(dims).clamp_min(1e-6).tolist())


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


@register("digits")
def load_digits(root=None, test_fraction: float = 0.3, split_seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits as (1, 8, 8) float images in [0, 1]; fixed stratified split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    train = ArrayDataset(torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx]))
    test = ArrayDataset(torch.from_numpy(images[test_idx]), torch.from_numpy(labels[test_idx]))
    mean, std = _channel_stats(train.x)
    fingerprint = "digits-" + _digest(images[train_idx], labels[train_idx], images[test_idx])
    return Dataset("digits", train, test, tuple(str(c) for c in range(10)), fingerprint, mean, std)


def _cached_arrays(cache: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays from an `.npz` cache, or built by `build` and cached (atomically) for the next load."""
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt, never trusted
    arrays = build()
    with atomic_path(cache, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return arrays


def _splits(arrays: dict[str, np.ndarray]) -> tuple[ArrayDataset, ArrayDataset]:
    return tuple(ArrayDataset(torch.from_numpy(arrays[f"{part}_x"]), torch.from_numpy(arrays[f"{part}_y"]))
                 for part in ("train", "test"))


# MNIST-1D's signals lie in about [-5.5, 4.6]; a fixed affine map onto [0, 1] (not one fitted to
# the data) keeps the project's input convention, so AMUN's epsilon and the [0, 1] clamp of every
# attack mean the same on every draw of the generator.
MNIST1D_RANGE = (-6.0, 6.0)


@register("mnist1d")
def load_mnist1d(root=None, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020): 4,000 train / 1,000 test signals of length 40, 10 classes.

    Generated offline by the `mnist1d` package's procedural generator (`make_dataset` with its
    default arguments and `seed`; its URL loader is never called), mapped from
    `MNIST1D_RANGE` onto [0, 1] and stored as (N, 1, 40) float32, so a 1-D CNN and an MLP
    both take it. Generating takes a few seconds; the arrays are cached under `$UNLEARN_CACHE`.
    Small MLPs fit its training set and leak membership strongly (docs/benchmarks.md), which
    makes it the embedded default for the demo and the test suite.
    """
    arrays = _cached_arrays(cache_dir() / "datasets" / f"mnist1d-seed{seed}.npz", lambda: _generate_mnist1d(seed))
    train, test = _splits(arrays)
    mean, std = _channel_stats(train.x)
    fingerprint = "mnist1d-" + _digest(arrays["train_x"], arrays["train_y"], arrays["test_x"])
    return Dataset("mnist1d", train, test, tuple(str(c) for c in range(10)), fingerprint, mean, std)


def _generate_mnist1d(seed: int) -> dict[str, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise UnlearnInputError('mnist1d needs the mnist1d package: pip install mnist1d') from err
    args = get_dataset_args()
    args.seed = seed
    # The generator reseeds numpy's global state; keep the caller's stream untouched.
    state = np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(state)
    lo, hi = MNIST1D_RANGE

    def to_unit(x):
        return np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)[:, None, :]

    return {"train_x": to_unit(raw["x"]), "train_y": np.asarray(raw["y"], dtype=np.int64),
            "test_x": to_unit(raw["x_test"]), "test_y": np.asarray(raw["y_test"], dtype=np.int64)}


# ---------------------------------------------------------------- image folders (CIFAR-10 copy)

def cache_dir() -> Path:
    return Path(os.environ.get("UNLEARN_CACHE", Path.home() / ".cache" / "unlearn"))


def _source_signature(path: Path) -> str:
    """What identifies the source's content cheaply: size and mtime of the archive or every file."""
    if path.is_file():
        st = path.stat()
        parts = [f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"]
    else:
        parts = [str(path.resolve())]
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                parts.append(f"{p.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _iter_images(path: Path):
    """Yield (split, class_name, file_name, bytes) for every image under train/ and test/."""
    suffixes = (".jpg", ".jpeg", ".png", ".bmp")
    if path.is_file():
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    parts = Path(member.name).parts
                    if not member.isfile() or not member.name.lower().endswith(suffixes) or len(parts) < 3:
                        continue
                    split, cls, fname = parts[-3:]
                    if split in ("train", "test"):
                        yield split, cls, fname, tar.extractfile(member).read()
        except tarfile.TarError as err:
            raise UnlearnInputError(f"{path}: not a readable tar archive ({err})") from err
    else:
        for split in ("train", "test"):
            for p in sorted((path / split).glob("*/*")):
                if p.suffix.lower() in suffixes:
                    yield split, p.parent.name, p.name, p.read_bytes()


def _decode_imagefolder(path: Path, progress: bool):
    from PIL import Image
    from rich.progress import Progress

    records = {"train": [], "test": []}
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"decoding {path.name}", total=None)
        for split, cls, fname, blob in _iter_images(path):
            with Image.open(io.BytesIO(blob)) as img:
                records[split].append((cls, fname, np.asarray(img.convert("RGB"), dtype=np.uint8)))
            bar.advance(task)
    if not records["train"] or not records["test"]:
        raise UnlearnInputError(f"{path}: expected images under train/<class>/ and test/<class>/")
    # Class folders in alphabetical order give the label indices (CIFAR-10: airplane=0 ... truck=9).
    classes = sorted({cls for cls, _, _ in records["train"]})
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, recs in records.items():
        unknown = {c for c, _, _ in recs} - set(index)
        if unknown:
            raise UnlearnInputError(f"{path}: {split}/ has classes missing from train/: {sorted(unknown)}")
        recs.sort(key=lambda r: (index[r[0]], r[1]))
        shapes = {r[2].shape for r in recs}
        if len(shapes) != 1:
            raise UnlearnInputError(f"{path}: images of different sizes {sorted(shapes)[:3]}")
        out[split + "_x"] = np.stack([r[2] for r in recs]).transpose(0, 3, 1, 2).copy()
        out[split + "_y"] = np.array([index[r[0]] for r in recs], dtype=np.int64)
    out["classes"] = np.array(classes)
    return out


def load_imagefolder(path, name: str | None = None, progress: bool = True) -> Dataset:
    """An image folder (`train/<class>/*`, `test/<class>/*`) or a tar archive of one.

    Decoded arrays are cached under `$UNLEARN_CACHE` (default ~/.cache/unlearn), keyed by the
    source's size and modification time, so a second load takes about a second and a changed
    source is decoded again.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UnlearnInputError(f"image folder {str(path)!r} does not exist")
    signature = _source_signature(path)
    arrays = _cached_arrays(cache_dir() / "datasets" / f"{path.name}-{signature}.npz",
                            lambda: _decode_imagefolder(path, progress))
    train, test = _splits(arrays)
    mean, std = _channel_stats(train.x)
    classes = tuple(str(c) for c in arrays["classes"])
    # The fingerprint keys the model bank and every job record, so it is the decoded content's, not
    # the source's path and modification time (which only key the decode cache): the same images
    # copied to another machine or path, or provisioned again, find the models and records made
    # from them. Keyed by path and mtime, a re-provisioned archive retrained every CIFAR-10 model.
    content = _digest(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                      np.array([",".join(classes)]).astype("S"))
    return Dataset(name or f"imagefolder:{path}", train, test, classes, f"{path.name}-{content}", mean, std)


def find_cifar10(root=None) -> Path | None:
    """Where the CIFAR-10 image folder is: `root`, then `$UNLEARN_CIFAR10`; None if neither."""
    for candidate in (root, os.environ.get("UNLEARN_CIFAR10")):
        if candidate and Path(candidate).expanduser().exists():
            return Path(candidate).expanduser()
    return None


@register("cifar10")
def load_cifar10(root=None, progress: bool = True) -> Dataset:
    """CIFAR-10 from an image folder or its .tar.gz (`root=` or `$UNLEARN_CIFAR10`)."""
    path = find_cifar10(root)
    if path is None:
        raise UnlearnInputError(
            "cifar10 needs its image folder: pass --data-root PATH (a folder or .tar.gz with "
            "train/<class>/*.jpg and test/<class>/*.jpg) or set UNLEARN_CIFAR10, "
            "or use torchvision:cifar10 to download it"
        )
    ds = load_imagefolder(path, name="cifar10", progress=progress)
    if len(ds.classes) != 10:
        raise UnlearnInputError(f"{path}: cifar10 needs 10 class folders, found {len(ds.classes)}")
    return ds


# ---------------------------------------------------------------- optional public downloads

_TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN", "mnist": "MNIST",
                "fashion-mnist": "FashionMNIST"}


def _from_arrays(name: str, train_x, train_y, test_x, test_y, classes) -> Dataset:
    def to_nchw(a):
        a = np.asarray(a, dtype=np.uint8)
        return a[:, None] if a.ndim == 3 else (a.transpose(0, 3, 1, 2) if a.shape[-1] in (1, 3) else a)

    train = ArrayDataset(torch.from_numpy(to_nchw(train_x).copy()), torch.as_tensor(np.asarray(train_y), dtype=torch.long))
    test = ArrayDataset(torch.from_numpy(to_nchw(test_x).copy()), torch.as_tensor(np.asarray(test_y), dtype=torch.long))
    mean, std = _channel_stats(train.x)
    return Dataset(name, train, test, tuple(classes), f"{name}-{_digest(train.y.numpy(), test.y.numpy())}", mean, std)


def _torchvision_loader(key: str):
    def load_tv(root=None, download: bool = True) -> Dataset:
        try:
            import torchvision.datasets as tvd
        except ImportError as err:
            raise UnlearnInputError(f"torchvision:{key} needs torchvision: pip install torchvision") from err
        root = root or str(cache_dir() / "torchvision")
        cls = getattr(tvd, _TORCHVISION[key])
        if key == "svhn":
            tr, te = cls(root, split="train", download=download), cls(root, split="test", download=download)
            return _from_arrays(f"torchvision:{key}", tr.data.transpose(0, 2, 3, 1), tr.labels,
                                te.data.transpose(0, 2, 3, 1), te.labels, [str(i) for i in range(10)])
        tr, te = cls(root, train=True, download=download), cls(root, train=False, download=download)
        data = [np.asarray(d.data) for d in (tr, te)]
        return _from_arrays(f"torchvision:{key}", data[0], tr.targets, data[1], te.targets, tr.classes)

    return load_tv


for _key in _TORCHVISION:
    register(f"torchvision:{_key}")(_torchvision_loader(_key))


@register("hf:tiny-imagenet")
def load_tiny_imagenet(root=None) -> Dataset:
    """Tiny ImageNet (200 classes, 64x64) through Hugging Face `datasets` (zh-plus/tiny-imagenet)."""
    try:
        from datasets import load_dataset
    except ImportError as err:
        raise UnlearnInputError("hf:tiny-imagenet needs Hugging Face datasets: pip install datasets") from err
    parts = load_dataset("zh-plus/tiny-imagenet", cache_dir=root)

    def arrays(split):
        images = np.stack([np.asarray(im.convert("RGB")) for im in parts[split]["image"]])
        return images, np.asarray(parts[split]["label"])

    (trx, try_), (tex, tey) = arrays("train"), arrays("valid")
    names = parts["train"].features["label"].names
    return _from_arrays("hf:tiny-imagenet", trx, try_, tex, tey, names)


def describe(ds: Dataset) -> str:
    return json.dumps({"name": ds.name, "train": len(ds.train), "test": len(ds.test),
                       "classes": len(ds.classes), "input_shape": list(ds.input_shape)})
