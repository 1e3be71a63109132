"""`cnnkit train`, `cnnkit evaluate`, `cnnkit predict`."""

from __future__ import annotations

import json
import signal
import time
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text

from ..calculator import human_bytes
from ..training.config import LAUNCHERS, SCHEDULES
from .common import (
    EXIT_USAGE,
    Device,
    DownloadBar,
    Optimizer,
    app,
    choices,
    console,
    errors,
    fail,
    read_spec,
    reported_errors,
)

Schedule = choices("Schedule", SCHEDULES)
Launcher = choices("Launcher", LAUNCHERS)


class Output(str, Enum):
    rich = "rich"
    quiet = "quiet"
    jsonl = "jsonl"


class TableOrJson(str, Enum):
    table = "table"
    json = "json"


def _user_errors():
    """The errors of data, runs and training, mapped to exit code 1."""
    from ..data import DataError
    from ..training.rundir import RunError
    from ..training.trainer import TrainingError

    return DataError, RunError, TrainingError, RuntimeError


class DecodeBar:
    """The decoding of an image folder: a bar on a terminal, a line at start and end off it."""

    def __init__(self):
        self.progress = self.task = None

    def __call__(self, data: dict) -> None:
        done, total = data["done"], data["total"]
        if not console.is_terminal:
            if done == total:
                console.print(f"decoded {total:,} images of {data['dataset']} (cached for "
                              "later runs)", markup=False)
            return
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(TextColumn("decoding images"), BarColumn(),
                                     MofNCompleteColumn(), console=console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = self.task = None


class RichReporter:
    """Shows training events as a progress bar per epoch and one table line per epoch."""

    HEADER = f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'val loss':>8}  " \
             f"{'val acc':>7}  {'lr':>8}  {'time':>7}  {'img/s':>7}  {'data':>5}"

    def __init__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.2%}  "
                       "{task.fields[speed]:,.0f} img/s"),
            TimeRemainingColumn(), console=console, transient=True,
        )
        self.task = None
        self.header_shown = False
        self.downloads = DownloadBar()
        self.decoding = DecodeBar()

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "download":
            self.downloads(data["file"], data["bytes"], data["total"])
        elif kind == "notice":
            console.print(Text(data["message"], style="yellow"))
        elif kind == "decode":
            self.decoding(data)
        elif kind == "data":
            self.downloads.close()
            self.decoding.close()
            console.print(Text(f"data: {data['dataset']} from {data['source']}: "
                               f"{data['train']:,} training / {data['val']:,} validation images"))
        elif kind == "memory" and "measured_peak_bytes" in data:
            console.print(f"memory: estimated {human_bytes(data['estimate_bytes'])}, measured "
                          f"peak {human_bytes(data['measured_peak_bytes'])} in the first steps")
        elif kind == "memory":
            free = data["available_bytes"]
            console.print(f"memory: the calculator estimates {human_bytes(data['estimate_bytes'])}"
                          + (f" ({human_bytes(free)} free)" if free else ""))
        elif kind == "epoch_start":
            if not console.is_terminal:  # a live bar only makes sense on a terminal
                return
            self.progress.start()
            self.task = self.progress.add_task("", total=data["steps"], epoch=data["epoch"],
                                               loss=0.0, acc=0.0, speed=0.0)
        elif kind == "step" and self.task is not None:
            self.progress.update(self.task, completed=data["step"], loss=data["loss"],
                                 acc=data["acc"], speed=data["images_per_s"])
        elif kind == "epoch":
            self.stop()
            if not self.header_shown:
                console.print(f"[bold]{self.HEADER}[/]")
                self.header_shown = True
            console.print(format_epoch(data))
        elif kind == "end":
            self.stop()

    def stop(self):
        self.downloads.close()
        self.decoding.close()
        if self.task is not None:  # a bar is live only on a terminal, after epoch_start
            self.progress.remove_task(self.task)
            self.task = None
            self.progress.stop()


def format_epoch(row: dict) -> str:
    val_loss = "-" if row["val_loss"] is None else f"{row['val_loss']:.4f}"
    val_acc = "-" if row["val_acc"] is None else f"{row['val_acc']:.2%}"
    waited = row.get("data_wait")  # the share of the epoch spent waiting for batches
    return (f"{row['epoch']:>5}  {row['train_loss']:>10.4f}  {row['train_acc']:>9.2%}  "
            f"{val_loss:>8}  {val_acc:>7}  {row['lr']:>8.2g}  {row['seconds']:>6.1f}s  "
            f"{row['images_per_s']:>7,.0f}  {'-' if waited is None else f'{waited:.1%}':>5}")


def _dataset_name(dataset: str) -> str:
    """A built-in dataset's name as given; own data as an absolute path, so that
    `cnnkit evaluate` finds it from any folder."""
    from ..data import is_own_data

    return str(Path(dataset).expanduser().absolute()) if is_own_data(dataset) else dataset


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def jsonl_reporter(kind: str, data: dict) -> None:
    """Every event but the steps, and of a download its start and end."""
    if kind == "step" or kind == "download" and data["bytes"] not in (0, data["total"]):
        return
    if kind == "decode" and data["done"] not in (data["total"] // 100 or 1, data["total"]):
        return  # its first and last report
    typer.echo(json.dumps({"event": kind, **data}))


@app.command()
def train(
    spec: str = typer.Argument(None, help="Spec file to train (not needed with --resume)."),
    dataset: str = typer.Option("mnist", help="mnist, mnist-sample, fashion-mnist, cifar10, "
                                "or your own data: a folder of class subfolders (PATH/cat/*.jpg; "
                                "with PATH/train/ and PATH/test/ those splits) or an .npz file "
                                "with x_train, y_train, x_test, y_test."),
    epochs: int = typer.Option(None, min=1, help="Passes over the training set (default: 8; "
                               "with --resume: the run's own, or more to extend it)."),
    batch: int = typer.Option(64, min=1, help="Images per step."),
    optimizer: Optimizer = typer.Option("adam", help="Update rule."),
    lr: float = typer.Option(None, help="Learning rate (default: sgd 0.05, momentum 0.01, "
                             "adam 0.001)."),
    weight_decay: float = typer.Option(0.0, help="L2 penalty on weights (not biases/BN)."),
    lr_schedule: Schedule = typer.Option("constant", help="Learning-rate schedule."),
    val_split: float = typer.Option(0.1, help="Fraction of the training set held out for "
                                    "validation (never the test set)."),
    seed: int = typer.Option(0, help="Seed for weights, shuffling, dropout and augmentation."),
    device: Device = typer.Option("auto", help="cpu, gpu, or auto (GPU if CuPy sees one)."),
    dtype: str = typer.Option("float32", help="float32 or float64."),
    standardize: bool = typer.Option(False, help="Standardize each channel with the training "
                                     "set's mean and std."),
    data_dir: str = typer.Option(None, help="Folder holding the dataset files."),
    init_std: float = typer.Option(None, help="Draw every weight from N(0, std^2) instead of "
                                   "He/Glorot; the textbook's SimpleConvNet uses 0.01."),
    limit: int = typer.Option(None, min=1, help="Train on the first N images only."),
    augment: str = typer.Option(None, help="Augment each training batch on the fly with "
                                "transforms separated by commas: flip (left-right, half of "
                                "the images), crop:P (pad P black pixels, cut a random window "
                                "of the original size), translate:T (shift up to T pixels, "
                                "repeating the edges), cutout:S (blacken a random SxS square); "
                                "e.g. --augment flip,crop:4. Seeded like dropout."),
    resize: str = typer.Option("crop", help="How images of a --dataset folder reach the "
                               "INPUT size: crop (shorter side to the size, centre cut out), "
                               "stretch (both sides, aspect changes) or pad (longer side, "
                               "black bars)."),
    prefetch: int = typer.Option(1, min=0, help="Batches prepared ahead in a background "
                                 "thread (0: none); results are the same either way."),
    input_shape: str = typer.Option(None, "--input", help="Override the spec's INPUT shape."),
    out: Path = typer.Option(None, help="Run directory (default: runs/SPEC-TIMESTAMP)."),
    resume: Path = typer.Option(None, help="Continue the run in this directory from its last "
                                "checkpoint (--epochs may extend it)."),
    output: Output = typer.Option(Output.rich, help="rich (progress bars), quiet, or jsonl."),
    launcher: Launcher = typer.Option("none", help="mpi: this is one of several processes "
                                      "that train together, each on its share of every batch "
                                      "(start them with `mpiexec -n 2 cnnkit train ... "
                                      "--launcher mpi`; CPU only, needs `pip install "
                                      "'cnnkit\\[mpi]'`). --batch stays the whole batch: the "
                                      "result is that of one process, to rounding."),
) -> None:
    """Train a network on MNIST, Fashion-MNIST, CIFAR-10 or your own images and write a run
    directory (weights, checkpoints, metrics) that evaluate, predict and visualize read."""
    from ..graph.build import parse
    from ..training.config import TrainConfig
    from ..training.ranks import RanksError, check_alone, connect, ending_all_on_failure
    from ..training.rundir import RunDirectory
    from ..training.trainer import Trainer

    user_errors = _user_errors()
    if launcher.value != "none" and device.value == "auto":
        device = Device("cpu")
    try:
        if launcher.value == "none":
            check_alone()
        ranks = connect(launcher.value, device.value)
    except RanksError as error:
        raise fail(str(error), EXIT_USAGE) from None
    reporter = {Output.rich: RichReporter(), Output.jsonl: jsonl_reporter,
                Output.quiet: None}[output] if ranks.rank == 0 else None
    # errors are printed first, then the other ranks ended
    with ending_all_on_failure(ranks), reported_errors():
        if resume is not None:
            run = RunDirectory(resume)
            try:
                trainer = Trainer.resuming(run, epochs, device.value, prefetch, reporter,
                                           ranks)
            except user_errors as error:
                raise fail(str(error)) from None
        else:
            if spec is None:
                raise fail("give a spec file to train, or --resume RUN_DIR", EXIT_USAGE)
            # rank 0's spec: a spec on stdin reaches rank 0 only
            text, name = ranks.share(read_spec(spec) if ranks.rank == 0 else None)
            network = parse(text, filename=name, input_shape=input_shape)
            try:
                config = TrainConfig(
                    dataset=_dataset_name(dataset), epochs=epochs or TrainConfig.epochs, batch=batch,
                    optimizer=optimizer.value,
                    lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule.value,
                    val_split=val_split, seed=seed, device=device.value, dtype=dtype,
                    standardize=standardize, data_dir=data_dir, limit=limit,
                    init_std=init_std, augment=augment or "", resize=resize,
                    prefetch=prefetch)
            except ValueError as error:
                raise fail(str(error), EXIT_USAGE) from None
            stem = Path(name).stem if name != "<stdin>" else "stdin"
            # rank 0's name: the ranks' clocks may tick between them
            out = ranks.share(out or Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
            run = RunDirectory(out)
            if ranks.share(run.config.exists()):  # rank 0's answer: it may write it soon
                raise fail(f"{out} already holds a run; continue it with --resume {out} "
                           "or choose another --out", EXIT_USAGE)
            trainer = Trainer(network, config, run, on_event=reporter, ranks=ranks)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` saves a checkpoint too, like Ctrl-C
    with ending_all_on_failure(ranks, trainer):
        _train(trainer, run, reporter, output, resume is not None, user_errors)


def _train(trainer, run, reporter, output: Output, resume: bool, user_errors) -> None:
    """Runs ``trainer`` and reports how it ended (rank 0 does, among ranks; errors are each
    rank's own)."""
    try:
        metrics = trainer.train(resume=resume)
    except KeyboardInterrupt:
        if isinstance(reporter, RichReporter):
            reporter.stop()
        saved = getattr(trainer, "saved_checkpoint", None)
        if trainer.writes and run.config.exists():  # among ranks, rank 0 says it
            where = f"{saved} is saved" if saved else "no checkpoint was written yet"
            errors.print(f"interrupted: {where}; continue with `cnnkit train --resume "
                         f"{run.path}`", markup=False, soft_wrap=True)
        elif trainer.writes:
            errors.print("interrupted before training began; nothing was saved",
                         markup=False)
        raise typer.Exit(130) from None
    except user_errors as error:
        if isinstance(reporter, RichReporter):
            reporter.stop()
        raise fail(str(error)) from None
    last = metrics[-1] if metrics else None
    if not trainer.writes:
        return
    if output is Output.quiet and last:
        console.print(format_epoch(last))
    if output is Output.rich:
        console.print(f"run saved in [bold]{escape(str(run.path))}[/]: weights_final.npz, checkpoints/, "
                      f"metrics.csv. Next: `cnnkit evaluate {run.path}`")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory written by `cnnkit train`."),
    dataset: str = typer.Option(None, help="Dataset, image folder or .npz file (default: "
                                "the one trained on)."),
    split: str = typer.Option("test", help="test or train."),
    data_dir: str = typer.Option(None, help="Folder holding the dataset files."),
    device: Device = typer.Option("cpu", help="cpu, gpu or auto."),
    batch: int = typer.Option(256, min=1, help="Images per forward pass."),
    output_format: TableOrJson = typer.Option(TableOrJson.table, "--format", "-f"),
) -> None:
    """Loss, accuracy, per-class accuracy and the confusion matrix on a dataset split."""
    from ..training.predict import load_run

    try:
        with DownloadBar() as downloads:
            data, result = load_run(run, device=device.value).evaluate(
                dataset, split=split, data_dir=data_dir, batch=batch, on_progress=downloads)
    except _user_errors() as error:
        raise fail(str(error)) from None
    except ValueError as error:
        raise fail(str(error), EXIT_USAGE) from None
    if data.notice:
        errors.print(data.notice, markup=False)
    if output_format is TableOrJson.json:
        typer.echo(json.dumps({"run": str(run), "dataset": data.name, "split": split,
                               **result.to_dict()}, indent=2))
        return
    print_evaluation(result, data.name, split)


def print_evaluation(result, dataset: str, split: str) -> None:
    from rich.table import Table

    console.print(f"[bold]{dataset} {split}[/]: {result.count:,} images, loss "
                  f"{result.loss:.4f}, accuracy [bold]{result.accuracy:.2%}[/]")
    names = result.class_names
    table = Table(title="confusion matrix (rows: true class, columns: predicted)",
                  title_justify="left", header_style="bold")
    table.add_column("class")
    for i in range(len(names)):
        table.add_column(str(i), justify="right")
    table.add_column("accuracy", justify="right")
    for i, name in enumerate(names):
        cells = [f"[green]{v}[/]" if i == j else (str(v) if v else "[dim]0[/]")
                 for j, v in enumerate(result.confusion[i])]
        label = name if name == str(i) else f"{i} {name}"  # digits: "3", not "3 3"
        table.add_row(label, *cells, f"{result.per_class_accuracy[i]:.1%}")
    console.print(table)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run directory written by `cnnkit train`."),
    images: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Classes to show per image."),
    invert: bool = typer.Option(False, help="Invert the images first (dark digits on light "
                                "paper, as MNIST is light on dark)."),
    device: Device = typer.Option("cpu", help="cpu, gpu or auto."),
    output_format: TableOrJson = typer.Option(TableOrJson.table, "--format", "-f"),
    slide: bool = typer.Option(False, "--slide", help="Slide a fully convolutional run "
                               "(`cnnkit convert --fc-to-conv`) over each image at its own "
                               "size, in one pass: top classes per window position."),
) -> None:
    """Top-k classes with probabilities for image files; each image is converted to the
    model's input (grayscale or RGB, resized) exactly as its training images were.  With
    --slide, images are not resized: a map of scores comes out, one per input-sized window."""
    from ..training.predict import load_run, predict_files, slide_files

    try:
        trained = load_run(run, device=device.value)
        results = (slide_files if slide else predict_files)(trained, images, top_k=top_k,
                                                            invert=invert)
    except _user_errors() as error:
        raise fail(str(error)) from None
    if output_format is TableOrJson.json:
        typer.echo(json.dumps(results, indent=2))
        return
    for result in results:
        if slide:
            print_score_map(result)
        else:
            console.print(f"{escape(result['image'])}: {_ranked(result['top'])}")


def _ranked(top: list[dict]) -> str:
    return ", ".join(f"[bold]{t['name']}[/] {t['probability']:.1%}" if i == 0 else
                     f"{t['name']} {t['probability']:.1%}" for i, t in enumerate(top))


def print_score_map(result: dict) -> None:
    (rows, cols), (wh, ww), (sh, sw) = result["map"], result["window"], result["stride"]
    console.print(f"{escape(result['image'])}: score map {rows}x{cols} ({wh}x{ww} windows, "
                  f"every {sh}x{sw} pixels)")
    for position in result["positions"]:
        console.print(f"  ({position['row']}, {position['col']}): {_ranked(position['top'])}")
