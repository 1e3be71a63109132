"""Time one training step of cnnkit against the same network in PyTorch.

    PYTHONPATH=. python3 -m benchmarks.train_step m2 --batch 128
    PYTHONPATH=. python3 -m benchmarks.train_step m1 m2 m3 --layers

A step is forward + softmax cross-entropy + backward + momentum-SGD update, float32, on the
same random batch, with the same weights in both frameworks.  Prints the median ms/step of
each (steps interleaved in one process), the ratio cnnkit/PyTorch, the GFLOP/s each reaches
from the calculator's MACs (2 FLOPs per MAC, x3 for forward + backward) and that as a
fraction of the float32 GEMM peak measured in the same run.  ``--layers`` adds cnnkit's
per-layer forward/backward times and each conv layer's forward GFLOP/s; ``--im2col`` adds a
third contender, cnnkit with every convolution by im2col (``CNNKIT_CONV_ALGORITHM=im2col``),
which shows what the calculator's choice of Winograd layers gains, in the same run.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

import numpy

from cnnkit.engine import softmax_cross_entropy

from . import common
from .contenders import CnnkitStep, TorchStep


def setup_device(device: str, threads: int, tf32: bool = False):
    """(torch, xp, torch device, sync) for "cpu" or "gpu".

    On the GPU both sides compute in strict float32 unless ``tf32``: PyTorch's cuDNN
    convolutions would otherwise use TF32 tensor cores by default, and CuPy only does when
    CUPY_TF32=1 is set before it is imported (benchmarks/gpu.sh sets it for its TF32 runs)."""
    import torch

    if device == "gpu":
        import cupy

        def sync():
            cupy.cuda.Device().synchronize()
            torch.cuda.synchronize()

        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        return torch, cupy, "cuda", sync
    torch.set_num_threads(threads)
    return torch, numpy, "cpu", lambda: None


def check_same_function(ours: CnnkitStep, theirs: TorchStep) -> float:
    """Relative difference of the first-step losses (the same weights and data)."""
    a = float(softmax_cross_entropy(ours.model.forward(ours.x), ours.y)[0])
    b = float(theirs.F.cross_entropy(theirs.logits(), theirs.y).detach())
    return abs(a - b) / max(abs(b), 1e-12)


def profile_layers(step: CnnkitStep, sync, repeats: int = 5) -> list[dict]:
    """Median forward and backward seconds of every cnnkit layer in training steps as the
    model runs them (a pooled conv's include its ReLU and pool, which show as pooled)."""
    model = step.model
    nodes = model.network.nodes
    with common.timed_layers(model, sync) as times:
        for _ in range(repeats):
            step()
    summary = model.network.summary()
    return [{"index": i, "name": nodes[i].name, "kind": nodes[i].kind, "macs": summary.rows[i].macs,
             "forward_s": statistics.median(times[i]["forward"] or [0.0]),
             "backward_s": statistics.median(times[i]["backward"] or [0.0]),
             "pooled": not times[i]["forward"]}
            for i in range(1, model._run)]


def run_one(name: str, batch: int, args, torch, xp, device, sync, peak: float) -> dict:
    path, network = common.load(name)
    ours = CnnkitStep(network, batch, xp=xp)
    theirs = None if args.no_torch else TorchStep(network, batch, device, weights_from=ours.model)
    mismatch = check_same_function(ours, theirs) if theirs is not None else math.nan
    contenders = {"cnnkit": ours}
    if theirs is not None:
        contenders["torch"] = theirs
    if args.im2col:
        contenders["im2col"] = im2col_step(network, batch, xp)
    times = common.interleaved(contenders, args.steps, args.warmup, sync)
    macs = network.summary().macs
    flops = 2 * 3 * macs * batch
    result = {"spec": path.stem, "batch": batch, "macs_per_image": macs,
              "loss_mismatch": mismatch, "load_average": common.load_average()}
    for who, seconds in times.items():
        ms = common.median_ms(seconds)
        result[who] = {"ms": ms, "gflops": flops / (ms / 1000) / 1e9,
                       "peak_fraction": flops / (ms / 1000) / 1e9 / peak}
    if theirs is not None:
        result["ratio"] = result["cnnkit"]["ms"] / result["torch"]["ms"]
    if args.im2col:
        result["ratio_to_im2col"] = result["cnnkit"]["ms"] / result["im2col"]["ms"]
    if args.layers:
        result["layers"] = profile_layers(ours, sync)
    return result


def im2col_step(network, batch: int, xp) -> CnnkitStep:
    """The same step (same seed, so the same weights) with every convolution by im2col."""
    with common.conv_algorithm("im2col"):
        return CnnkitStep(network, batch, xp=xp)


def report(result: dict, peak: float) -> None:
    print(f"\n{result['spec']} batch {result['batch']}  "
          f"({result['macs_per_image'] / 1e6:.1f} MMACs/image; load {result['load_average']})")
    for who in ("cnnkit", "torch", "im2col"):
        if who in result:
            r = result[who]
            print(f"  {who:<7}{r['ms']:9.1f} ms/step {r['gflops']:8.1f} GFLOP/s "
                  f"{100 * r['peak_fraction']:5.0f}% of GEMM peak")
    if "ratio" in result:
        print(f"  ratio cnnkit/torch {result['ratio']:.2f}x   "
              f"(first-step losses differ by {result['loss_mismatch']:.1e} relative)")
    if "ratio_to_im2col" in result:
        print(f"  ratio cnnkit/im2col-only {result['ratio_to_im2col']:.3f}x")
    if "layers" in result:
        batch = result["batch"]
        print(f"  {'layer':<24}{'fwd ms':>8}{'bwd ms':>8}{'fwd GFLOP/s':>13}{'of peak':>9}")
        for row in result["layers"]:
            rate = ""
            if row["macs"]:
                gflops = 2 * row["macs"] * batch / row["forward_s"] / 1e9
                rate = f"{gflops:13.1f}{100 * gflops / peak:8.0f}%"
            if row["pooled"]:
                print(f"  {row['index']:>2} {row['name']:<21}  run by the pooled conv")
                continue
            print(f"  {row['index']:>2} {row['name']:<21}{1000 * row['forward_s']:8.2f}"
                  f"{1000 * row['backward_s']:8.2f}{rate}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="spec files or names in benchmarks/specs/")
    parser.add_argument("--batch", type=int, help="batch size (default 128; m3: 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--layers", action="store_true", help="cnnkit per-layer breakdown")
    parser.add_argument("--no-torch", action="store_true", help="time cnnkit alone")
    parser.add_argument("--im2col", action="store_true",
                        help="also time cnnkit with every convolution by im2col")
    parser.add_argument("--tf32", action="store_true",
                        help="GPU: let PyTorch use TF32 (set CUPY_TF32=1 for CuPy too)")
    args = parser.parse_args(argv)
    torch, xp, device, sync = setup_device(args.device, args.threads, args.tf32)
    common.print_header(common.machine(torch))
    common.warn_if_loaded()
    if args.device == "gpu":
        print(f"# GPU {torch.cuda.get_device_name()}, CuPy {xp.__version__}, cuDNN "
              f"{torch.backends.cudnn.version()}; TF32 "
              f"{'on (torch), CUPY_TF32=' + os.environ.get('CUPY_TF32', '0') if args.tf32 else 'off'}")
    peak = common.gemm_peak(xp=xp, sync=sync, size=4096 if args.device == "gpu" else 2048)
    print(f"# float32 GEMM peak ({'CuPy/cuBLAS' if args.device == 'gpu' else 'NumPy BLAS'}): "
          f"{peak:.0f} GFLOP/s")
    for name in args.specs:
        batch = args.batch or common.DEFAULT_BATCH.get(common.resolve_spec(name).stem, 128)
        report(run_one(name, batch, args, torch, xp, device, sync, peak), peak)
    print(f"\n# GEMM peak re-measured at the end: "
          f"{common.gemm_peak(xp=xp, sync=sync, size=4096 if args.device == 'gpu' else 2048):.0f}"
          f" GFLOP/s; load average {common.load_average()}")


if __name__ == "__main__":
    main()
