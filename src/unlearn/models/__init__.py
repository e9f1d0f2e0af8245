"""Models layer: architectures by name, the pixel-space `Classifier`, safetensors files, inference."""

from unlearn.models.architectures import available, build, register  # noqa: F401
from unlearn.models.io import Classifier, check_compatible, create, load_model, read_spec, save_model  # noqa: F401
from unlearn.models.predict import accuracy, logits, per_sample_loss, true_class_confidence  # noqa: F401
