"""Data layer: datasets as tensors in memory, forget sets, batched augmentation."""

from unlearn.data.augment import augment, random_crop, random_flip  # noqa: F401
from unlearn.data.datasets import (  # noqa: F401
    ArrayDataset,
    Dataset,
    as_float,
    available,
    cache_dir,
    find_cifar10,
    load,
    load_imagefolder,
)
from unlearn.data.forget import (  # noqa: F401
    ForgetSplit,
    as_index_tensor,
    class_forget,
    load_forget_csv,
    random_forget,
    save_forget_csv,
    split_holdout,
    validate_forget,
)
