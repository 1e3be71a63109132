"""Time inference (a forward pass in evaluation mode) of cnnkit against PyTorch.

    PYTHONPATH=. python3 -m benchmarks.inference m2 --batch 256

Prints the median ms per batch of each (interleaved in one process), the ratio, GFLOP/s
from the calculator's MACs (2 FLOPs per MAC) and, for cnnkit, every conv layer's forward
GFLOP/s as a fraction of the float32 GEMM peak measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics

from . import common
from .contenders import CnnkitStep, TorchStep
from .train_step import setup_device


def conv_layers(step: CnnkitStep, sync, repeats: int = 7) -> list[dict]:
    """Median forward seconds of every cnnkit conv layer, in evaluation mode, as the model
    runs them (a pooled conv's include its ReLU and pool)."""
    model = step.model
    nodes = model.network.nodes
    with common.timed_layers(model, sync) as times:
        for _ in range(repeats):
            step.infer()
    summary = model.network.summary()
    return [{"index": i, "name": nodes[i].name, "macs": summary.rows[i].macs,
             "seconds": statistics.median(times[i]["forward"])}
            for i in range(1, model._run) if nodes[i].kind == "conv"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="spec files or names in benchmarks/specs/")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed batches per contender")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args(argv)
    torch, xp, device, sync = setup_device(args.device, args.threads)
    common.print_header(common.machine(torch))
    common.warn_if_loaded()
    size = 4096 if args.device == "gpu" else 2048
    peak = common.gemm_peak(xp=xp, sync=sync, size=size)
    print(f"# float32 GEMM peak: {peak:.0f} GFLOP/s")
    for name in args.specs:
        path, network = common.load(name)
        ours = CnnkitStep(network, args.batch, xp=xp)
        theirs = TorchStep(network, args.batch, device, weights_from=ours.model)
        times = common.interleaved({"cnnkit": ours.infer, "torch": theirs.infer},
                                   args.steps, args.warmup, sync)
        flops = 2 * network.summary().macs * args.batch
        print(f"\n{path.stem} batch {args.batch}  (load {common.load_average()})")
        ms = {who: common.median_ms(t) for who, t in times.items()}
        for who, value in ms.items():
            gflops = flops / value * 1000 / 1e9
            print(f"  {who:<7}{value:9.1f} ms/batch {gflops:8.1f} GFLOP/s "
                  f"{100 * gflops / peak:5.0f}% of GEMM peak")
        print(f"  ratio cnnkit/torch {ms['cnnkit'] / ms['torch']:.2f}x")
        print(f"  {'conv layer (cnnkit)':<26}{'ms':>8}{'GFLOP/s':>10}{'of peak':>9}")
        for row in conv_layers(ours, sync):
            gflops = 2 * row["macs"] * args.batch / row["seconds"] / 1e9
            print(f"  {row['index']:>2} {row['name']:<23}{1000 * row['seconds']:8.2f}"
                  f"{gflops:10.1f}{100 * gflops / peak:8.0f}%")
    print(f"\n# GEMM peak re-measured at the end: {common.gemm_peak(xp=xp, sync=sync, size=size):.0f}"
          f" GFLOP/s; load average {common.load_average()}")


if __name__ == "__main__":
    main()
