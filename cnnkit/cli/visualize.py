"""`cnnkit visualize`: filters, feature maps, training curves, confusion matrix, network.

A thin shell over ``cnnkit.viz``.  Every command writes one PNG (or SVG, by the --out
suffix), prints its path, and with --show also draws it in the terminal.  Pillow and
matplotlib are imported only inside the commands, so `cnnkit summarize` never pays for them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from .common import (
    EXIT_USAGE,
    Device,
    DownloadBar,
    app,
    console,
    errors,
    fail,
    read_spec,
    reported_errors,
)

visualize_app = typer.Typer(
    name="visualize",
    help="Pictures of a network and of what it learned: filters before and after training, "
    "feature maps, training curves, the confusion matrix, the architecture.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(visualize_app, name="visualize")

RUN_HELP = "Run directory written by `cnnkit train`."
OUT_HELP = "Picture to write, .png or .svg"
SHOW_HELP = "Also draw the picture in this terminal (Unicode half blocks in true colour)."


def _user_errors():
    """The errors a user can cause: bad runs, data, images, layers (exit code 1)."""
    from ..data import DataError
    from ..training.rundir import RunError
    from ..training.trainer import TrainingError
    from ..viz import VizError

    return VizError, RunError, DataError, TrainingError, RuntimeError


@contextlib.contextmanager
def _reported(value_error_code: int | None = None):
    """Spec errors as `summarize` reports them, user errors as one line with exit code 1,
    never a traceback (typer.Exit is a RuntimeError, so it is let through first)."""
    user = _user_errors()
    try:
        with reported_errors():
            yield
    except typer.Exit:
        raise
    except user as error:
        raise fail(str(error)) from None
    except ValueError as error:
        if value_error_code is None:
            raise
        raise fail(str(error), value_error_code) from None


def _out(out: Path | None, default: Path) -> Path:
    from ..viz import VizError
    from ..viz.output import check_suffix

    try:
        return check_suffix(out or default)
    except VizError as error:
        raise fail(str(error), EXIT_USAGE) from None


def _finish(picture, out: Path, show: bool, notes=()) -> None:
    from ..viz import VizError
    from ..viz.output import save

    for note in notes:
        errors.print(f"note: {note}", markup=False)
    try:
        path = save(picture, out)
    except VizError as error:
        raise fail(str(error)) from None
    if show:
        from ..viz.terminal import render

        render(picture, console)
    typer.echo(str(path))


@visualize_app.command()
def filters(
    run: Path = typer.Argument(..., help=RUN_HELP),
    layer: int = typer.Option(None, help="Node index of the CONV layer, as the # column of "
                              "`cnnkit summarize` prints it (default: the first CONV)."),
    compare_init: bool = typer.Option(False, "--compare-init", help="Put the filters before "
                                      "training (weights_init.npz) beside the trained ones."),
    out: Path = typer.Option(None, "--out", "-o",
                             help=f"{OUT_HELP} (default: RUN/viz/filters-LAYER.png, or -compare.png)."),
    scale: int = typer.Option(None, min=1, help="Pixels per weight (default: ~40-pixel cells)."),
    columns: int = typer.Option(None, min=1, help="Filters per row (default: near square)."),
    max_filters: int = typer.Option(None, min=1, help="Filters shown at most (default: 256 "
                                    "for 1- and 3-channel filters, 32 for deeper ones)."),
    max_channels: int = typer.Option(None, min=1, help="Deeper layers: input-channel slices "
                                     "per filter shown at most (default: 32)."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Titles above the grids."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """A grid of one CONV layer's filters, before and after training.

    Each filter is min-max normalized on its own (smallest weight black, largest white) and
    upscaled by nearest neighbour.  1 input channel: grayscale cells (the textbook figure);
    3 channels read from an RGB input: colour cells; deeper layers: one row per filter with
    one grayscale cell per input-channel slice (capped by --max-filters/--max-channels; a
    note says when).
    """
    from ..viz.filters import run_filters

    target = _out(out, None) if out is not None else None
    with _reported():
        picture, grid = run_filters(run, layer=layer, compare_init=compare_init,
                                    labels=labels, scale=scale, columns=columns,
                                    max_filters=max_filters, max_channels=max_channels)
    name = f"filters-{grid.node_index}{'-compare' if compare_init else ''}.png"
    _finish(picture, target or _out(None, run / "viz" / name), show, grid.notes)


@visualize_app.command()
def activations(
    run: Path = typer.Argument(..., help=RUN_HELP),
    image: Path = typer.Option(None, "--image", help="Image file to feed the network "
                               "(converted to its channels and size)."),
    index: int = typer.Option(None, "--index", min=0, help="Use image K of --dataset."),
    dataset: str = typer.Option(None, help="Dataset for --index (default: the one trained on)."),
    split: str = typer.Option("test", help="test or train (for --index)."),
    data_dir: str = typer.Option(None, help="Folder holding the dataset files."),
    invert: bool = typer.Option(False, help="Invert the --image first (dark digits on light "
                                "paper, as MNIST is light on dark)."),
    max_maps: int = typer.Option(64, min=1, help="Feature maps shown per layer at most."),
    device: Device = typer.Option("cpu", help="cpu, gpu or auto."),
    out: Path = typer.Option(None, "--out", "-o", help=f"{OUT_HELP} "
                             "(default: RUN/viz/activations-IMAGE.png)."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """The feature maps of every CONV and POOL layer for one input image.

    One labelled grid per layer under the input; each map min-max normalized on its own.
    A CONV panel shows the convolution's output before its activation.
    """
    if (image is None) == (index is None):
        raise fail("give exactly one of --image FILE or --index K", EXIT_USAGE)
    stem = image.stem if image is not None else f"{split}-{index}"
    target = _out(out, run / "viz" / f"activations-{stem}.png")
    from ..training.predict import load_run
    from ..viz.activations import activation_picture, load_input

    with _reported(EXIT_USAGE):
        trained = load_run(run, device=device.value)
        with DownloadBar() as downloads:
            pixels, caption = load_input(trained, image, index, dataset, split, data_dir,
                                         invert, on_progress=downloads)
        picture, _ = activation_picture(trained, pixels, caption, max_maps=max_maps)
    _finish(picture, target, show)


@visualize_app.command()
def curves(
    runs: list[Path] = typer.Argument(..., help="One or more run directories, or sweep folders "
                                                "(all their trials), to overlay."),
    out: Path = typer.Option(None, "--out", "-o", help=f"{OUT_HELP} (default: "
                             "RUN/viz/curves.png for one run, ./curves.png for several)."),
    title: str = typer.Option(None, help="Title above the plots."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """Loss and accuracy per epoch of one or more runs, overlaid.

    Training solid, validation dashed, one colour per run; 1000 x 400 pixels.
    """
    target = _out(out, runs[0] / "viz" / "curves.png" if len(runs) == 1 else Path("curves.png"))
    from ..viz.curves import curves_figure, read_runs

    with _reported():
        picture = curves_figure(read_runs(runs), title=title)
    _finish(picture, target, show)


@visualize_app.command()
def confusion(
    run: Path = typer.Argument(..., help=RUN_HELP),
    dataset: str = typer.Option(None, help="Dataset (default: the one trained on)."),
    split: str = typer.Option("test", help="test or train."),
    data_dir: str = typer.Option(None, help="Folder holding the dataset files."),
    normalize: bool = typer.Option(False, help="Write each cell's share of its true class "
                                   "instead of the count."),
    device: Device = typer.Option("cpu", help="cpu, gpu or auto."),
    batch: int = typer.Option(256, min=1, help="Images per forward pass."),
    out: Path = typer.Option(None, "--out", "-o", help=f"{OUT_HELP} "
                             "(default: RUN/viz/confusion-DATASET-SPLIT.png)."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """The confusion matrix on a dataset split, with the class names.

    Rows: true class, columns: predicted; cells coloured by their share of the true class
    and labelled with counts.  800 x 720 pixels for 10 classes.
    """
    from ..training.predict import load_run
    from ..viz.confusion import confusion_figure, confusion_title

    out = _out(out, None) if out is not None else None
    with _reported(EXIT_USAGE), DownloadBar() as downloads:
        data, result = load_run(run, device=device.value).evaluate(
            dataset, split=split, data_dir=data_dir, batch=batch, on_progress=downloads)
    if data.notice:
        errors.print(data.notice, markup=False)
    picture = confusion_figure(result.confusion, data.class_names, normalize=normalize,
                               title=confusion_title(data.name, split, result.accuracy,
                                                     result.count))
    _finish(picture, out or _out(None, run / "viz" / f"confusion-{data.name}-{split}.png"), show)


@visualize_app.command()
def augment(
    target: Path = typer.Argument(..., help="A run directory (its data, --augment, --resize "
                                  "and seed), or a spec file with --dataset and --augment."),
    dataset: str = typer.Option(None, help="Dataset, image folder or .npz file (default: "
                                "the run's)."),
    augment_: str = typer.Option(None, "--augment", help="Transforms, e.g. flip,crop:4 "
                                 "(default: the run's; see `cnnkit train --help`)."),
    resize: str = typer.Option(None, help="crop, stretch or pad, for an image folder "
                               "(default: the run's, else crop)."),
    data_dir: str = typer.Option(None, help="Folder holding the dataset files."),
    count: int = typer.Option(8, min=1, help="Training images shown, one per row."),
    variants: int = typer.Option(7, min=1, help="Augmented copies beside each original."),
    seed: int = typer.Option(None, help="Seed of the draws (default: the run's, else 0)."),
    out: Path = typer.Option(None, "--out", "-o", help=f"{OUT_HELP} (default: "
                             "RUN/viz/augment.png, or ./SPEC-augment.png)."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """Training images beside augmented copies of them: what the network sees.

    Each row: an original (left) and --variants augmentations drawn as training draws them,
    upscaled by nearest neighbour.
    """
    from ..data.augment import parse_augment
    from ..data.images import RESIZE_MODES
    from ..graph.build import parse
    from ..training.config import TrainConfig
    from ..training.rundir import RunDirectory

    run = RunDirectory(target)
    is_run = run.config.exists()
    with _reported(EXIT_USAGE):
        if is_run:
            network, config = run.read_network(), run.read_config()
            classes = run.read_classes(network.output_shape.size)
            default = run.path / "viz" / "augment.png"
        else:
            text, name = read_spec(str(target))
            network, config, classes = parse(text, filename=name), TrainConfig(), None
            default = Path(f"{target.stem}-augment.png")
            if dataset is None or augment_ is None:
                raise fail(f"{target} is a spec, not a run: give --dataset and --augment",
                           EXIT_USAGE)
        if (resize or config.resize) not in RESIZE_MODES:
            raise fail(f"--resize must be one of {', '.join(RESIZE_MODES)}", EXIT_USAGE)
        augmentation = parse_augment(augment_ if augment_ is not None else config.augment)
    target_out = _out(out, default)
    from ..data import OwnData, load_dataset
    from ..viz.augment import augment_picture, sample_images

    shape = network.input_shape
    chosen_seed = config.seed if seed is None else seed
    with _reported(), DownloadBar() as downloads:
        data = load_dataset(dataset or config.dataset, "train", data_dir or config.data_dir,
                            on_progress=downloads,
                            own=OwnData((shape.h, shape.w, shape.c), resize or config.resize,
                                        classes))
        picture = augment_picture(sample_images(data, count, chosen_seed), augmentation,
                                  seed=chosen_seed, variants=variants,
                                  title=f"{data.name}: original | --augment {augmentation}")
    _finish(picture, target_out, show)


@visualize_app.command()
def scores(
    run: Path = typer.Argument(..., help="A fully convolutional run (`cnnkit convert "
                               "RUN --fc-to-conv --out RUN2`)."),
    image: Path = typer.Argument(..., help="An image at least as large as the run's input."),
    invert: bool = typer.Option(False, help="Invert the image first."),
    max_classes: int = typer.Option(10, min=1, help="Classes drawn at most (those with the "
                                    "highest probability anywhere)."),
    device: Device = typer.Option("cpu", help="cpu, gpu or auto."),
    out: Path = typer.Option(None, "--out", "-o", help=f"{OUT_HELP} "
                             "(default: RUN/viz/scores-IMAGE.png)."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """A heat map per class of the run slid over a large image in one pass (CS231n's
    FC -> CONV conversion): each window position's probability, 0 black to 1 white."""
    target = _out(out, run / "viz" / f"scores-{image.stem}.png")
    from ..training.predict import load_run, score_map
    from ..viz.scores import score_picture

    with _reported():
        trained = load_run(run, device=device.value)
        picture = score_picture(score_map(trained, image, invert), trained.class_names,
                                max_classes)
    _finish(picture, target, show)


@visualize_app.command()
def network(
    spec: str = typer.Argument(..., help="Spec file (`-` reads standard input)."),
    input_shape: str = typer.Option(None, "--input", help="Input shape HxWxC; fills in or "
                                    "overrides the spec's INPUT."),
    out: Path = typer.Option(None, "--out", "-o",
                             help=f"{OUT_HELP} (default: ./SPEC-NAME.png)."),
    title: str = typer.Option(None, help="Title (default: the file, parameters and MACs)."),
    compact: bool = typer.Option(False, "--compact", help="Each RES or CAT piece as one box, "
                                 "at smaller scales (ResNet-50 on one screen)."),
    vertical: bool = typer.Option(False, "--vertical", help="Top to bottom instead of left "
                                  "to right."),
    show: bool = typer.Option(False, "--show", help=SHOW_HELP),
) -> None:
    """A picture of the architecture in the style of the LeNet and AlexNet figures.

    Each volume is a box scaled by its height, width and depth (log-scaled where sizes
    differ a lot) and labelled with its layer, every arrow with its tensor's shape;
    element-wise layers are named under the box before them; RES and CAT branches side by
    side; identical consecutive pieces drawn once with "x N".  Needs no training run.
    """
    from .summarize import load_network  # a spec, or an ONNX model read as `import` reads it

    with reported_errors():
        net = load_network(spec, input_shape, None)
    name = net.filename
    stem = Path(name).stem if name != "<stdin>" else "network"
    target = _out(out, Path(f"{stem}.png"))
    from ..viz.network import network_figure

    with _reported():
        picture = network_figure(net, title=title, compact=compact, vertical=vertical)
    _finish(picture, target, show)
