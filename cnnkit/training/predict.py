"""Loading a trained run, and classifying image files with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import DATASETS, load_dataset, to_float
from ..data.catalog import canonical_name
from ..engine.backend import select_device
from ..engine.model import Model
from ..graph.network import Network
from .config import TrainConfig
from .rundir import RunDirectory, RunError


@dataclass
class TrainedRun:
    run: RunDirectory
    network: Network
    config: TrainConfig
    model: Model
    normalization: tuple[np.ndarray, np.ndarray] | None
    class_names: tuple[str, ...]
    device: str

    def prepare(self, images_uint8: np.ndarray) -> np.ndarray:
        """uint8 NHWC -> the float input the model was trained on."""
        mean, std = self.normalization or (None, None)
        return to_float(images_uint8, mean, std)

    def dataset(self, name: str | None, split: str = "test", data_dir=None, on_progress=None):
        """A split of ``name`` (default: the trained-on set); see ``load_dataset``."""
        return load_dataset(name or self.config.dataset, split=split,
                            data_dir=data_dir or self.config.data_dir, on_progress=on_progress)

    def evaluate(self, name: str | None = None, split: str = "test", data_dir=None,
                 batch: int = 256, on_progress=None):
        """``(dataset, Evaluation)`` of the model on a split (default: the trained-on set);
        the dataset's ``notice`` says when a fallback was used.  ``on_progress`` follows a
        download, as in ``load_dataset``."""
        from .evaluation import evaluate
        from .trainer import check_input

        data = self.dataset(name, split=split, data_dir=data_dir, on_progress=on_progress)
        check_input(self.network, data.shape, data.name)
        result = evaluate(self.model, self.prepare(data.images), data.labels,
                          num_classes=len(data.class_names), batch=batch,
                          class_names=data.class_names)
        return data, result


def load_run(path, device: str = "cpu", which: str = "final") -> TrainedRun:
    """The network of a run directory with its ``which`` ("final" or "init") weights."""
    run = RunDirectory(path)
    run.require(run.spec, run.config)
    network, config = run.read_network(), run.read_config()
    xp, description = select_device(device)
    model = Model(network, xp=xp, dtype=config.dtype, seed=config.seed)
    try:
        model.load_state_dict(run.weights(which))
    except ValueError as error:
        raise RunError(f"the weights in {run.path} do not fit its spec: {error}") from None
    key = canonical_name(config.dataset)
    names = DATASETS[key].class_names if key else tuple(str(i) for i in
                                                        range(network.output_shape.size))
    return TrainedRun(run, network, config, model, run.read_normalization(), names, description)


def read_image(path, shape: tuple[int, int, int], invert: bool = False) -> np.ndarray:
    """An image file as uint8 HxWxC of the model's input shape: converted to grayscale or
    RGB as the model's channels ask, resized with a bilinear filter."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    h, w, c = shape
    if c not in (1, 3):
        raise RunError(f"cannot make a {c}-channel input from an image file (only 1 or 3)")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if c == 1 else "RGB")
            if invert:
                image = ImageOps.invert(image)
            if image.size != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise RunError(f"no such image: {path}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise RunError(f"cannot read {path} as an image ({error})") from None
    return array.reshape(h, w, c)


def predict_files(trained: TrainedRun, paths, top_k: int = 3, invert: bool = False) -> list[dict]:
    shape = trained.network.input_shape
    images = np.stack([read_image(p, (shape.h, shape.w, shape.c), invert) for p in paths])
    probs = trained.model.predict_proba(trained.prepare(images))
    results = []
    for path, p in zip(paths, probs):
        best = np.argsort(-p)[:top_k]
        results.append({"image": str(path), "top": [
            {"class": int(i), "name": trained.class_names[i] if i < len(trained.class_names)
             else str(i), "probability": float(p[i])} for i in best]})
    return results
