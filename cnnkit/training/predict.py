"""Loading a trained run, and classifying image files with it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..calculator import human_bytes
from ..data import DATASETS, load_dataset, to_float
from ..data.catalog import canonical_name
from ..engine.backend import select_device
from ..engine.model import Model
from ..graph.network import Network
from .config import TrainConfig
from .resources import memory_fit
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
                          num_classes=len(data.class_names),
                          batch=self.batch_that_fits(min(batch, max(len(data.labels), 1))),
                          class_names=data.class_names)
        return data, result


    def weights(self, which: str) -> dict[str, np.ndarray]:
        """The run's "final" or "init" arrays, checked against its network as loading them
        would check them (names, shapes, real finite values)."""
        arrays = self.run.weights(which)
        try:
            self.model.check_state_dict(arrays)
        except ValueError as error:
            raise RunError(f"the {which} weights in {self.run.path} do not fit its spec: "
                           f"{error}") from None
        return arrays

    def batch_that_fits(self, batch: int) -> int:
        """``batch``, or the largest smaller batch the free memory holds (results do not
        depend on it); a RunError when not even one image fits."""
        return _batch_that_fits(self.run, self.network, self.config, self.model.xp, batch)


def load_run(path, device: str = "cpu", which: str = "final") -> TrainedRun:
    """The network of a run directory with its ``which`` ("final" or "init") weights, each
    file of the run checked before use: a damaged or edited run is a RunError that names
    the file and the problem."""
    run = RunDirectory(path)
    run.require(run.spec, run.config)
    network, config = run.read_network(), run.read_config()
    normalization = run.read_normalization(network.input_shape.c)
    xp, description = select_device(device)
    _batch_that_fits(run, network, config, xp, 1)  # before the weights are allocated
    model = Model(network, xp=xp, dtype=config.dtype, seed=config.seed)
    key = canonical_name(config.dataset)
    names = DATASETS[key].class_names if key else tuple(str(i) for i in
                                                        range(network.output_shape.size))
    trained = TrainedRun(run, network, config, model, normalization, names, description)
    model.load_state_dict(trained.weights(which))
    return trained


def _batch_that_fits(run, network, config, xp, batch: int) -> int:
    fit = memory_fit(network, batch, dtype=config.dtype, optimizer="sgd", xp=xp)
    if fit.largest_batch == 0:
        raise RunError(f"the network of {run.spec} needs about {human_bytes(fit.needed_bytes)} "
                       f"for its weights and one image, but only {human_bytes(fit.free_bytes)} "
                       "is free (was the spec edited?)")
    return fit.largest_batch


MAX_PIXELS = 160_000_000  # 12000x12000 photos and scans fit; decompression bombs do not


def read_image(path, shape: tuple[int, int, int], invert: bool = False) -> np.ndarray:
    """An image file as uint8 HxWxC of the model's input shape (see ``_as_input``).  An
    image of more than ``MAX_PIXELS`` pixels is refused from its header, before decoding."""
    from PIL import Image

    h, w, c = shape
    if c not in (1, 3):
        raise RunError(f"cannot make a {c}-channel input from an image file (only 1 or 3)")
    too_large = RunError(f"cannot read {path}: it has more than {MAX_PIXELS // 10**6} "
                         "megapixels (a decompression bomb?); scale it down first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's size and damaged-metadata warnings
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise too_large
                array = np.asarray(_as_input(image, "L" if c == 1 else "RGB", (w, h), invert),
                                   dtype=np.uint8)
    except Image.DecompressionBombError:
        raise too_large from None
    except FileNotFoundError:
        raise RunError(f"no such image: {path}") from None
    except IsADirectoryError:
        raise RunError(f"{path} is a folder: give an image file") from None
    except (OSError, SyntaxError, ValueError) as error:  # what Pillow raises on a bad file
        raise RunError(f"cannot read {path} as an image ({error})") from None
    return array.reshape(h, w, c)


def _as_input(image, mode: str, size: tuple[int, int], invert: bool):
    """An opened image's first frame in ``mode`` ("L" or "RGB") at ``size``: turned upright
    by its EXIF orientation, 16-bit grays scaled to 8 bits, transparent parts white (as on
    a page), resized with a bilinear filter; a large JPEG is decoded at 1/2 to 1/8 size."""
    from PIL import Image, ImageOps

    image.draft(mode, (max(size), max(size)))
    if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation: a photo taken sideways
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):  # Pillow's convert would clip, not scale
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    alpha = image.mode in ("LA", "PA", "RGBA") or "transparency" in image.info
    image = image.convert(mode + "A" if alpha else mode)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    if alpha:
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA")).convert(mode)
    return ImageOps.invert(image) if invert else image


PREDICT_BATCH = 256  # images per forward pass


def predict_files(trained: TrainedRun, paths, top_k: int = 3, invert: bool = False) -> list[dict]:
    shape = trained.network.input_shape
    batch = trained.batch_that_fits(min(len(paths), PREDICT_BATCH))
    images = np.stack([read_image(p, (shape.h, shape.w, shape.c), invert) for p in paths])
    probs = trained.model.predict_proba(trained.prepare(images), batch)
    results = []
    for path, p in zip(paths, probs):
        best = np.argsort(-p)[:top_k]
        results.append({"image": str(path), "top": [
            {"class": int(i), "name": trained.class_names[i] if i < len(trained.class_names)
             else str(i), "probability": float(p[i])} for i in best]})
    return results
