"""Loading a trained run, and classifying image files with it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..calculator import human_bytes
from ..calculator.costs import receptive_field
from ..data import DATASETS, OwnData, load_dataset, to_float
from ..data.catalog import canonical_name
from ..data.images import read_image
from ..engine.backend import select_device, to_numpy
from ..engine.layers import softmax
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
        """A split of ``name`` (default: the trained-on set); see ``load_dataset``.  Own
        images are converted as in training, and their classes numbered as the model's."""
        shape = self.network.input_shape
        own = OwnData((shape.h, shape.w, shape.c), self.config.resize, self.class_names)
        return load_dataset(name or self.config.dataset, split=split,
                            data_dir=data_dir or self.config.data_dir, on_progress=on_progress,
                            own=own)

    def read_image(self, path, invert: bool = False) -> np.ndarray:
        """An image file as the uint8 pixels of the model's input, converted as its
        training images were (see ``cnnkit.data.images``)."""
        shape = self.network.input_shape
        return read_image(path, (shape.h, shape.w, shape.c), self.config.resize, invert)

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
            raise _unfit(self.run, which, error) from None
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
    names = run.read_classes(network.output_shape.size) or _catalog_names(config, network)
    try:
        model.load_state_dict(run.weights(which))  # checks them all before copying any
    except ValueError as error:
        raise _unfit(run, which, error) from None
    return TrainedRun(run, network, config, model, normalization, names, description)


def _unfit(run: RunDirectory, which: str, error: ValueError) -> RunError:
    return RunError(f"the {which} weights in {run.path} do not fit its spec: {error}")


def _catalog_names(config: TrainConfig, network: Network) -> tuple[str, ...]:
    """The class names of a run from before classes.json: its dataset's, or numbers."""
    key = canonical_name(config.dataset)
    return DATASETS[key].class_names if key else tuple(str(i) for i in
                                                       range(network.output_shape.size))


def _batch_that_fits(run, network, config, xp, batch: int) -> int:
    fit = memory_fit(network, batch, dtype=config.dtype, optimizer="sgd", xp=xp)
    if fit.largest_batch == 0:
        raise RunError(f"the network of {run.spec} needs about {human_bytes(fit.needed_bytes)} "
                       f"for its weights and one image, but only {human_bytes(fit.free_bytes)} "
                       "is free (was the spec edited?)")
    return fit.largest_batch


PREDICT_BATCH = 256  # images per forward pass


def predict_files(trained: TrainedRun, paths, top_k: int = 3, invert: bool = False) -> list[dict]:
    batch = trained.batch_that_fits(min(len(paths), PREDICT_BATCH))
    images = np.stack([trained.read_image(p, invert) for p in paths])
    probs = trained.model.predict_proba(trained.prepare(images), batch)
    return [{"image": str(path), "top": top_classes(trained, p, top_k)}
            for path, p in zip(paths, probs)]


def top_classes(trained: TrainedRun, probabilities: np.ndarray, top_k: int) -> list[dict]:
    """The ``top_k`` most probable classes, with their names, most probable first."""
    names = trained.class_names
    return [{"class": int(i), "name": names[i] if i < len(names) else str(i),
             "probability": float(probabilities[i])} for i in np.argsort(-probabilities)[:top_k]]


@dataclass
class ScoreMap:
    """Class probabilities at every position of a fully convolutional network slid over an
    image: ``probabilities`` is (rows, cols, classes); position (i, j) is the window whose
    top-left corner is ``stride`` * (i, j) pixels into the image."""

    image: str
    probabilities: np.ndarray
    window: tuple[int, int]  # the trained input size
    stride: tuple[int, int]  # pixels between neighbouring windows
    pixels: np.ndarray  # the image as the network read it, uint8 (H, W, C)

    @property
    def size(self) -> tuple[int, int]:
        return self.probabilities.shape[:2]


def sliding_network(trained: TrainedRun, shape: tuple[int, int, int]) -> Model:
    """The run's model at input ``shape``: the same weights, slid over a larger image (a
    fully convolutional network's weights do not depend on its input size)."""
    from ..graph.build import parse

    network = trained.network
    if any(node.kind in ("fc", "flatten") for node in network.nodes):
        raise RunError(f"{trained.run.path} has FC layers, which need inputs of the trained "
                       f"size; make a fully convolutional run first: cnnkit convert "
                       f"{trained.run.path} --fc-to-conv --out RUN2")
    slid = parse(network.source, filename=network.filename, input_shape=shape)
    model = Model(slid, xp=trained.model.xp, dtype=trained.config.dtype)
    model.load_state_dict(trained.model.state_dict())
    return model


def score_map(trained: TrainedRun, path, invert: bool = False) -> ScoreMap:
    """The network slid over the image file at its own size (not resized), in one pass."""
    from PIL import Image

    want = trained.network.input_shape
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as error:
        raise RunError(f"cannot read {path} as an image ({error})") from None
    if height < want.h or width < want.w:
        raise RunError(f"{path} is {height}x{width}, smaller than the network's input "
                       f"{want.h}x{want.w}; sliding needs an image at least that large")
    pixels = read_image(path, (height, width, want.c), "stretch", invert)
    model = sliding_network(trained, (height, width, want.c))
    logits = model.forward(trained.prepare(pixels[None]), train=False)
    return ScoreMap(str(path), to_numpy(softmax(logits))[0], (want.h, want.w),
                    _stride(model.network), pixels)


def _stride(network: Network) -> tuple[int, int]:
    """Input pixels between neighbouring output positions (the receptive field's jump)."""
    fields = []
    for node in network.nodes:
        fields.append(receptive_field(node, [fields[i] for i in node.inputs],
                                      [network.nodes[i].out for i in node.inputs]))
    return fields[-1].jump


def slide_files(trained: TrainedRun, paths, top_k: int = 3, invert: bool = False) -> list[dict]:
    """Each image's score map (see ``score_map``): its size, the window and stride in
    pixels, and the top classes at every position, row by row."""
    results = []
    for path in paths:
        scores = score_map(trained, path, invert)
        rows, cols = scores.size
        results.append({
            "image": scores.image, "map": [rows, cols], "window": list(scores.window),
            "stride": list(scores.stride),
            "positions": [{"row": i, "col": j,
                           "top": top_classes(trained, scores.probabilities[i, j], top_k)}
                          for i in range(rows) for j in range(cols)]})
    return results
