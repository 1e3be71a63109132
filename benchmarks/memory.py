"""The calculator's predicted training memory against the peak the engine really allocates.

    PYTHONPATH=. python3 -m benchmarks.memory                 # M1-M3, VGG-16 and more
    PYTHONPATH=. python3 -m benchmarks.memory m2:32 m2:256    # SPEC:BATCH pairs

The measurement is the trainer's (``cnnkit.training.resources.peak_memory``: tracemalloc on
the CPU) around what the trainer does first: create the model and a momentum-SGD optimizer,
then two training steps (batch indexed out of a dataset that already exists, forward,
softmax cross-entropy, backward, update).  The trainer's own region also saves the initial
weights (``--with-save``), streamed from the live arrays: NumPy's write buffer of up to
16 MiB is all it adds, which shows where the parameters outweigh the step's activations.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import numpy

from cnnkit.calculator import human_bytes
from cnnkit.calculator.memory import estimate, executor_terms
from cnnkit.engine import Model, Momentum, softmax_cross_entropy
from cnnkit.training.resources import peak_memory
from cnnkit.training.rundir import save_arrays

from . import common
from .contenders import batch_data, classes

DEFAULT = ["m1:128", "m2:128", "m3:64", "vgg16:8", "m2:32", "m2:256", "m1:16",
           "resnet18-cifar:64"]


def measure(network, batch: int, save_weights: bool = False) -> int:
    """Peak bytes allocated by model creation, optimizer creation and two steps."""
    x_all, y_all = batch_data(network, 2 * batch, classes(network))
    gc.collect()
    with peak_memory(numpy) as measured:
        model = Model(network, seed=0)
        optimizer = Momentum(model.parameters(), lr=0.01)
        if save_weights:  # what the trainer does before its first steps
            with tempfile.TemporaryDirectory() as folder:
                save_arrays(Path(folder) / "weights_init.npz", model.state_dict(copy=False))
        for step in range(2):
            index = numpy.arange(step * batch, (step + 1) * batch)
            x = numpy.asarray(x_all[index], dtype=model.dtype)
            logits = model.forward(x, train=True)
            loss, dlogits = softmax_cross_entropy(logits, y_all[index])
            model.backward(dlogits, input_grad=False)  # as the trainer does
            optimizer.step()
            del x, logits, loss, dlogits
    del model, optimizer
    return measured["peak_bytes"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=DEFAULT, help="SPEC:BATCH pairs")
    parser.add_argument("--with-save", action="store_true",
                        help="also measure the trainer's region with its initial-weights save")
    args = parser.parse_args(argv)
    common.print_header(common.machine())
    print("# CS231n: the notes' formula (summary.memory); executor: estimate(**executor_terms())")
    print(f"{'spec':<16}{'batch':>6}{'measured':>12}{'CS231n':>12}{'error':>7}"
          f"{'executor':>12}{'error':>7}" + (f"{'with save':>12}" if args.with_save else ""))
    for run in args.runs:
        name, _, batch = run.partition(":")
        path, network = common.load(name)
        batch = int(batch or 32)
        summary = network.summary(batch=batch, optimizer="momentum")
        notes = summary.memory.total_bytes
        ours = estimate(input_size=summary.rows[0].activations, params=summary.params,
                        state=summary.state, batch=batch, dtype="float32", optimizer="momentum",
                        **executor_terms(network, batch)).total_bytes
        measured = measure(network, batch)
        line = (f"{path.stem:<16}{batch:>6}{human_bytes(measured):>12}{human_bytes(notes):>12}"
                f"{100 * (notes - measured) / measured:>+6.0f}%{human_bytes(ours):>12}"
                f"{100 * (ours - measured) / measured:>+6.0f}%")
        if args.with_save:
            line += f"{human_bytes(measure(network, batch, save_weights=True)):>12}"
        print(line, flush=True)
    print(f"# load average {common.load_average()}")


if __name__ == "__main__":
    main()
