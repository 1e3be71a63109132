"""The confusion matrix as a picture: rows are the true class, columns the predicted one,
each cell coloured by its share of the true class (so rare classes are as visible as common
ones) and labelled with its count (or, with ``normalize``, that share in percent)."""

from __future__ import annotations

import numpy as np

DPI = 100


def figure_size(classes: int) -> tuple[float, float]:
    """Inches at 100 dpi; 10 classes: 8.0 x 7.2 (800 x 720 pixels)."""
    return 2.8 + 0.52 * classes, 2.2 + 0.5 * classes


def confusion_figure(confusion, class_names, title: str = "", normalize: bool = False):
    from .output import new_figure

    matrix = np.asarray(confusion, dtype=np.int64)
    n = len(matrix)
    names = [str(c) for c in class_names] or [str(i) for i in range(n)]
    names = [names[i] if i < len(names) else str(i) for i in range(n)]
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    figure = new_figure(*figure_size(n), dpi=DPI)
    figure.set_layout_engine("constrained")
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    colourbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colourbar.set_label("share of the true class")
    small = 9 if n <= 10 else max(5, 9 - (n - 10) // 4)
    for i in range(n):
        for j in range(n):
            text = f"{share[i, j]:.0%}" if normalize else f"{matrix[i, j]}"
            if not normalize or matrix[i, j]:
                axes.text(j, i, text, ha="center", va="center", fontsize=small,
                          color="white" if share[i, j] > 0.5 else "black")
    long_names = any(len(name) > 2 for name in names)
    labels = [name if name == str(i) else f"{i} {name}" for i, name in enumerate(names)]
    axes.set_xticks(range(n), labels, rotation=45 if long_names else 0,
                    ha="right" if long_names else "center", rotation_mode="anchor")
    axes.set_yticks(range(n), labels)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title)
    return figure


def confusion_title(dataset: str, split: str, accuracy: float, count: int) -> str:
    return f"{dataset} {split}: accuracy {accuracy:.2%} on {count:,} images"
