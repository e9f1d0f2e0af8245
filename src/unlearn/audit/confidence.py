"""Confidence distributions: true-class confidence on D_R, D_F and D_T (AMUN Fig. 1).

For the retrained model the D_F and D_T distributions coincide; the Kolmogorov-Smirnov statistic
and the Wasserstein-1 distance between them (in percentage points of confidence) summarise how far
an unlearned model is from that. `plot_confidence` draws the three histograms (PNG, SVG, PDF).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp, wasserstein_distance

from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError
from unlearn.models import true_class_confidence


def confidences(model, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset) -> dict[str, np.ndarray]:
    return {name: true_class_confidence(model, part).numpy()
            for name, part in (("retain", retain), ("forget", forget), ("test", test))}


def confidence_distance(model, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset) -> dict[str, float]:
    """Mean confidences and the KS / Wasserstein distances between D_F and D_T, all ×100."""
    conf = confidences(model, forget, retain, test)
    return {"mean_retain": 100 * float(conf["retain"].mean()), "mean_forget": 100 * float(conf["forget"].mean()),
            "mean_test": 100 * float(conf["test"].mean()),
            "ks": 100 * float(ks_2samp(conf["forget"], conf["test"]).statistic),
            "wasserstein": 100 * float(wasserstein_distance(conf["forget"], conf["test"]))}


def plot_confidence(model, forget: ArrayDataset, retain: ArrayDataset, test: ArrayDataset, path,
                    title: str = "", bins: int = 20) -> Path:
    """Histograms of true-class confidence on D_R, D_F, D_T, written to `path` (format from its suffix)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UnlearnInputError(f"plot file {str(path)!r}: use a .png, .svg or .pdf name")
    conf = confidences(model, forget, retain, test)
    edges = np.linspace(0, 1, bins + 1)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, label in (("retain", "$D_R$"), ("forget", "$D_F$"), ("test", "$D_T$")):
        ax.hist(conf[name], bins=edges, density=True, histtype="step", linewidth=1.6, label=label)
    ax.set_xlabel("true-class confidence")
    ax.set_ylabel("density")
    ax.set_yscale("log")  # the mass piles up near 1; a log axis shows the tails that MIAs use
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
