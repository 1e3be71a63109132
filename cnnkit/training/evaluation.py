"""Loss, accuracy, per-class accuracy and the confusion matrix of a model on a data set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.backend import to_numpy
from ..engine.losses import softmax_cross_entropy


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    confusion: np.ndarray  # [true class, predicted class] counts
    class_names: tuple[str, ...] = ()

    @property
    def per_class_accuracy(self) -> np.ndarray:
        totals = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), totals, out=np.zeros(len(totals)),
                         where=totals > 0)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self) -> dict:
        return {
            "loss": self.loss, "accuracy": self.accuracy, "count": self.count,
            "class_names": list(self.class_names),
            "per_class_accuracy": [float(a) for a in self.per_class_accuracy],
            "confusion": self.confusion.tolist(),
        }


def evaluate(model, images: np.ndarray, labels: np.ndarray, num_classes: int,
             batch: int = 256, class_names=()) -> Evaluation:
    """Runs ``model`` in eval mode over float NHWC ``images``."""
    xp = model.xp
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    total_loss = 0.0
    for start in range(0, len(images), batch):
        x = xp.asarray(images[start:start + batch], dtype=model.dtype)
        y = labels[start:start + batch]
        logits = model.forward(x, train=False)
        loss, _ = softmax_cross_entropy(logits, xp.asarray(y))
        total_loss += float(loss) * len(y)
        predicted = to_numpy(logits.reshape(len(y), -1).argmax(axis=1))
        np.add.at(confusion, (y, predicted), 1)
    count = max(len(images), 1)
    return Evaluation(total_loss / count, float(np.trace(confusion)) / count, confusion,
                      tuple(class_names))
