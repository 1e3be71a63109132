"""Training-memory estimate: the CS231n notes' formula, or what cnnkit's engine really holds.

The notes' formula (``estimate`` with its defaults):

    activations   batch * (every new tensor of the forward pass, input included)
    gradients     batch * (the same, input excluded: nothing needs d(loss)/d(input))
    parameters    params * (1 value + 1 gradient + optimizer slots) + BN running stats
    optimizer slots: sgd 0, momentum 1 (velocity), adam 2 (first and second moments)

is an upper bound of its kind: a framework frees most gradients early.  ``executor_terms``
works out what cnnkit's executor (``cnnkit.engine``) holds at the peak of a training step,
which is what the trainer measures, so that ``estimate(**executor_terms(...), ...)`` predicts
it:

    activations   batch * (the arrays layers keep for backward: inputs of CONV/FC/LRN/BN,
                  outputs of RELU/TANH/SIGMOID/SOFTMAX and of max pools other than tiling
                  ones (which keep a byte per output instead, ``winner_bytes``; a CONV
                  that pools its own tiles keeps neither its output nor its ReLU's,
                  ``pooled_convolutions``),
                  Winograd's transformed input, dropout and leaky-ReLU masks, the input
                  batch and the logits; a RELU after CONV/FC/BN/RES/CAT overwrites its
                  input in place)
    gradients     batch * (the most gradient values alive at one time during backward:
                  the gradient a layer reads, the ones it writes, those waiting at branch
                  points, and a conv's kernel-sized arrays while its backward runs)
    workspace     the convolutions' tiles: per CPU core and work array (im2col rows, padded
                  input, Winograd's transforms, pooled convs' outputs;
                  ``convolution.tile_values``), the largest tile (up to ``tile_bytes`` in
                  its largest array, at least one image; sized for forward and backward,
                  where a layer reading the input batch computes no input gradient, and for
                  the evaluating forward of validation)
    parameters    as above

The tiling constants below are the engine's (``cnnkit.engine.parallel`` imports them).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from . import convolution

DTYPE_BYTES = {"float16": 2, "float32": 4, "float64": 8}
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}

# The engine's tiling of convolutions (``tile_bytes``): im2col tiles of up to TILE_BYTES per
# CPU core in their largest array (at least one image), TAP_MAJOR_TILE_BYTES for first
# layers, Winograd tiles of WINOGRAD_TILE_BYTES, GPU_TILE_BYTES on a GPU, where the batch is
# not split over threads.
TILE_BYTES = 4 * 2**20
TAP_MAJOR_TILE_BYTES = 2 * 2**20
WINOGRAD_TILE_BYTES = 2 * 2**20
GPU_TILE_BYTES = 256 * 2**20
CHUNKS_PER_WORKER = 2
# node kinds whose output a following RELU overwrites in place: fresh arrays their own layer
# does not keep (CONV, FC and BN keep their input, RES and CAT nothing)
OVERWRITABLE = frozenset({"conv", "fc", "bn", "add", "concat"})
# layers that apply the mask of a RELU reading them alone to their own output gradient
MASKING = frozenset({"conv", "bn"})
# layers that skip the gradient w.r.t. the input batch when training does not want it
NO_INPUT_GRAD = frozenset({"conv", "fc"})


def cpu_workers() -> int:
    """Threads the engine splits a batch over on the CPU: ``CNNKIT_NUM_THREADS``, else the
    cores this process may use; 1 without threadpoolctl (needed to pin BLAS to one thread)."""
    value = os.environ.get("CNNKIT_NUM_THREADS", "").strip()
    if value:
        return max(1, int(value))
    if importlib.util.find_spec("threadpoolctl") is None:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class MemoryEstimate:
    batch: int
    dtype: str
    optimizer: str
    activation_bytes: int  # forward values kept for backward
    gradient_bytes: int  # gradients of those activations
    parameter_bytes: int  # weights, their gradients, optimizer slots, BN state
    input_bytes: int  # the input batch (part of activation_bytes)
    workspace_bytes: int = 0  # convolution tiles (executor estimate only)

    @property
    def total_bytes(self) -> int:
        return (self.activation_bytes + self.gradient_bytes + self.parameter_bytes
                + self.workspace_bytes)

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes}


def estimate(*, activations: int, input_size: int, params: int, state: int, batch: int,
             dtype: str, optimizer: str, gradients: int | None = None,
             workspace: int = 0) -> MemoryEstimate:
    """Values per image (``activations``, ``input_size``, ``gradients``) and per network
    (``params``, ``state``) to bytes.  ``gradients`` defaults to ``activations - input_size``
    (the notes' formula); ``workspace`` is in bytes, for the whole batch."""
    size = DTYPE_BYTES[dtype]
    copies = 2 + OPTIMIZER_SLOTS[optimizer]
    if gradients is None:
        gradients = activations - input_size
    return MemoryEstimate(
        batch=batch, dtype=dtype, optimizer=optimizer,
        activation_bytes=batch * activations * size,
        gradient_bytes=batch * gradients * size,
        parameter_bytes=(params * copies + state) * size,
        input_bytes=batch * input_size * size,
        workspace_bytes=workspace,
    )


def masked_layers(network) -> dict[int, int]:
    """``{layer index: relu index}`` for every CONV or BN read by one RELU alone: the engine
    applies that ReLU's mask to the layer's output gradient block by block, inside the
    layer's backward, and the ReLU passes its gradient on unchanged (one pass over the
    gradient fewer)."""
    nodes = network.nodes
    readers = [0] * len(nodes)
    for node in nodes:
        for i in node.inputs:
            readers[i] += 1
    return {node.inputs[0]: node.index for node in nodes if node.kind == "relu"
            and nodes[node.inputs[0]].kind in MASKING and readers[node.inputs[0]] == 1}


def pooled_convolutions(network) -> dict[int, int]:
    """``{conv index: pool index}`` for every CONV whose output only a tiling max pool reads,
    directly or through a RELU that alone reads it: the engine's conv pools each of its
    tiles while it is in the core's cache and applies the ReLU, forward and backward, so
    that the conv's output and the ReLU's are never written or kept whole, and the ReLU
    and the pool do not run (benchmarks/RESULTS.md, 2026-12-07).  A Winograd layer does
    where its blocks hold whole windows (``convolution.pools_in_blocks``)."""
    nodes = network.nodes
    readers: list[list[int]] = [[] for _ in nodes]
    for node in nodes:
        for i in node.inputs:
            readers[i].append(node.index)
    pooled = {}
    for node in nodes:
        if node.kind != "conv" or len(readers[node.index]) != 1:
            continue
        after = nodes[readers[node.index][0]]
        if after.kind == "relu" and len(readers[after.index]) == 1:
            after = nodes[readers[after.index][0]]
        if not _tiles_pool(after, node.out):
            continue
        in_shape = nodes[node.inputs[0]].out
        method = convolution.algorithm(node.attrs, in_shape.c, (node.out.h, node.out.w))
        if method == "im2col" or convolution.pools_in_blocks(tuple(after.attrs["kernel"])):
            pooled[node.index] = after.index
    return pooled


def _masked_tiles(network) -> set[int]:
    """The convs whose backward makes each tile's output gradient in a work array: those
    applying a ReLU's mask (``masked_layers``) and the pooled ones, which send the pool's
    gradient to the winners of its windows (``pooled_convolutions``)."""
    return set(masked_layers(network)) | set(pooled_convolutions(network))


def pooled_through(network) -> set[int]:
    """The nodes that pooled convs compute for (``pooled_convolutions``): their pools and
    the ReLUs between, which do not run."""
    nodes = network.nodes
    return {k for conv, pool in pooled_convolutions(network).items()
            for k in (pool, nodes[pool].inputs[0]) if k != conv}


def executor_terms(network, batch: int, dtype: str = "float32", device: str = "cpu",
                   workers: int | None = None) -> dict[str, int]:
    """``activations``, ``gradients`` (values per image) and ``workspace`` (bytes) of a
    training step of cnnkit's engine, for ``estimate`` (see the module notes)."""
    run = network.nodes[:-1] if network.nodes[-1].kind == "softmax" else network.nodes
    if device != "cpu":
        workers = 1
    elif workers is None:
        workers = cpu_workers()
    return {"activations": _kept_values(network, run, DTYPE_BYTES[dtype]),
            "gradients": _gradient_peak(network, run, batch, DTYPE_BYTES[dtype],
                                        min(workers, batch), device),
            "workspace": _workspace(network, batch, DTYPE_BYTES[dtype],
                                    min(workers, batch), device)}


def _tiles_pool(node, in_shape) -> bool:
    a = node.attrs
    return (node.kind == "pool" and a["mode"] == "max" and tuple(a["stride"]) == tuple(a["kernel"])
            and tuple(a.get("dilation", (1, 1))) == (1, 1) and not any(a.get("pad", (0,) * 4)))


def _padded_size(node, in_shape) -> int:
    top, bottom, left, right = node.attrs.get("pad", (0, 0, 0, 0))
    return (in_shape.h + top + bottom) * (in_shape.w + left + right) * in_shape.c


def winner_bytes(window: int) -> int:
    """Bytes per output with which a tiling max pool notes the winning pixel of its window
    of ``window`` pixels (numpy.min_scalar_type of the largest index: 1 up to 256 pixels)."""
    return 1 if window <= 256 else 2 if window <= 2**16 else 4


def _kept_values(network, run, itemsize: int) -> int:
    """Values per image (of ``itemsize`` bytes) of the arrays the layers keep from forward
    to backward."""
    nodes = network.nodes
    output = run[-1].index
    readers = [0] * len(nodes)
    for node in nodes:
        for i in node.inputs:
            readers[i] += 1
    array = list(range(len(nodes)))  # which node's output array each node's output is
    held = {array[0], output}  # the input batch (the caller's) and the logits
    extra = 0
    through = pooled_through(network)  # ReLUs and pools that pooled convs run
    for node in run[1:]:
        k, kind = node.index, node.kind
        first = node.inputs[0] if node.inputs else 0
        in_shape, size = nodes[first].out, node.out.size
        if kind in ("flatten", "id") or (kind == "dropout" and node.attrs.get("p", 0) == 0):
            array[k] = array[first]  # a view of the input
        elif kind == "relu" and readers[first] == 1 and first != output and (
                nodes[first].kind in OVERWRITABLE):
            array[k] = array[first]  # in place
        if kind in ("conv", "fc", "lrn", "bn"):
            held.add(array[first])
        if kind == "conv":
            extra += convolution.kept_transform(node.attrs, in_shape, node.out)
        if kind in ("relu", "tanh", "sigmoid", "softmax") and k not in through:
            held.add(array[k])
        if kind == "pool":
            if _tiles_pool(node, in_shape):  # the winner of each window, in bytes
                window = node.attrs["kernel"][0] * node.attrs["kernel"][1]
                # (a pooled conv's has one value more: no winner, where the ReLU stops)
                extra += -(-size * winner_bytes(window + (k in through)) // itemsize)
            else:
                # padded copy of the input in the layer's scratch
                extra += _padded_size(node, in_shape) if any(node.attrs.get("pad", (0,) * 4)) \
                    else 0
                if node.attrs["mode"] == "max":
                    held.add(array[k])
        if kind == "lrelu" or (kind == "dropout" and node.attrs.get("p", 0) > 0):
            extra += size  # slope or mask
        if kind == "lrn":
            extra += 2 * size  # the denominator and the scale
        if kind == "gmp":
            extra += size  # where each map's maximum is
    return sum(nodes[i].out.size for i in held) + extra


def _gradient_peak(network, run, batch: int, itemsize: int, workers: int, device: str) -> int:
    """Most gradient values per image alive at one time in the executor's backward pass,
    as the trainer runs it: no gradient w.r.t. the input batch from the CONV and FC layers
    reading it (``NO_INPUT_GRAD``; other layers compute one all the same), and a conv's
    kernel-sized arrays while its backward runs (``_kernel_arrays``, spread over the batch)."""
    nodes = network.nodes
    sizes: dict[int, int] = {}  # live gradient arrays: id -> values
    ids = itertools.count()
    live = 0  # sum of sizes

    def new(values: int) -> int:
        nonlocal live
        key = next(ids)
        sizes[key] = values
        live += values
        return key

    masking = masked_layers(network)
    masked = set(masking.values())  # RELUs passing dy on
    through = pooled_through(network)  # and the ReLUs and pools of pooled convs
    tiled = _masked_tiles(network)
    pending: dict[int, int] = {run[-1].index: new(run[-1].out.size)}
    peak = 0
    for node in reversed(run[1:]):
        dy = pending.pop(node.index, None)
        if dy is None:
            continue
        kind = node.kind
        if kind in ("add", "concat", "flatten", "id") or node.index in masked or (
                node.index in through) or (
                kind == "dropout" and node.attrs.get("p", 0) == 0):
            produced = [dy] * len(node.inputs)  # the same array, or views of it
        else:
            produced = [new(nodes[i].out.size) for i in node.inputs
                        if i != 0 or kind not in NO_INPUT_GRAD]
        kernels = (_kernel_arrays(network, node, batch, itemsize, workers, device, tiled)
                   if kind == "conv" else 0)
        peak = max(peak, live - (-kernels // batch))  # spread over the batch, rounded up
        done = {dy, *produced}  # freed at the end unless still pending
        for i, dx in zip(node.inputs, produced):  # (a conv or FC has one input)
            if i in pending:  # summed into a new array while both are alive
                summed, pending[i] = pending[i], new(nodes[i].out.size)
                peak = max(peak, live)
                if summed not in done and summed not in pending.values():
                    live -= sizes.pop(summed)  # the engine lets go of it at once
            else:
                pending[i] = dx
        for key in done - set(pending.values()):
            live -= sizes.pop(key)
    return peak


def _kernel_arrays(network, node, batch: int, itemsize: int, workers: int, device: str,
                   masked: set[int]) -> int:
    """Values of a conv's backward the size of its kernels: those it computes the input
    gradient with (unless it reads the input batch), each chunk's weight gradient (kept
    until they are added in order), per thread the one a tile adds to it when a chunk has
    several, and for Winograd the sums being made, n*n values per kernel pair (n x n tiles)
    instead of the r*r each chunk returns; ``masked`` as for ``_tile``."""
    in_shape = network.nodes[node.inputs[0]].out
    kh, kw = node.attrs["kernel"]
    pairs = in_shape.c // node.attrs.get("groups", 1) * node.out.c
    method = convolution.algorithm(node.attrs, in_shape.c, (node.out.h, node.out.w))
    summed = convolution.winograd_tile(kh)**2 if method == "winograd" else kh * kw  # per pair
    tile, _ = _tile(network, node, batch, itemsize, workers, device, True, masked)
    tiles = -(-batch // tile)
    chunks = min(tiles, 1 if workers == 1 else CHUNKS_PER_WORKER * workers)
    busy = min(workers, chunks)
    adding = busy if tiles > chunks else 0
    values = (node.inputs[0] != 0) * summed + chunks * kh * kw + adding * summed
    if summed != kh * kw:
        values += busy * summed
    # the partial weight gradients of rows with a row of ones hold the bias's too
    ones = method == "im2col" and convolution.bias_row(node.attrs, in_shape.c)
    return values * pairs + ones * (chunks + adding) * node.out.c


def _tile(network, node, batch: int, itemsize: int, workers: int, device: str,
          backward: bool, masked, training: bool = True,
          pool: tuple[int, int] | None = None) -> tuple[int, dict[str, int]]:
    """Images per tile of a conv's forward or backward pass, and its work arrays' values per
    image (``convolution.tile_values``), as ``parallel.tiled_chunks`` cuts the batch;
    ``masked``: the layers making output gradient tiles (``_masked_tiles``); ``training`` and
    ``pool`` as for ``tile_values``."""
    shapes = network.nodes[node.inputs[0]].out, node.out
    # a layer reading the input batch computes no input gradient
    values = convolution.tile_values(node.attrs, *shapes, backward,
                                     input_grad=node.inputs[0] != 0,
                                     masked=node.index in masked, training=training, pool=pool)
    method = convolution.algorithm(node.attrs, shapes[0].c, (node.out.h, node.out.w))
    budget = tile_bytes(method, device, convolution.tap_major(node.attrs, shapes[0].c))
    return min(-(-batch // workers), max(1, budget // (max(values.values()) * itemsize))), values


def tile_bytes(method: str, device: str, tap_major: bool = False) -> int:
    """The most bytes in the largest work array of a conv tile computed by ``method`` on
    ``device`` ("cpu" or a GPU), for im2col with ``tap_major`` rows or not
    (``convolution.tap_major``).  im2col's rows feed one product, which BLAS blocks for its
    caches itself; Winograd passes its arrays through three products and copies in a row,
    which are faster where a tile's arrays stay in a core's cache: halving its tiles to 2 MiB
    made M1-M3's training steps 3-8% faster (benchmarks/RESULTS.md, 2026-12-04), 1 MiB and
    less gave that back in per-tile overhead and short products.  A first layer's tap-major
    rows feed a product of 10-28 terms per output, which writes more than it reads: tiles
    of 2 MiB made M1's step 2-10% faster in four A/Bs (2026-12-04, night; 1 MiB even)."""
    if device != "cpu":
        return GPU_TILE_BYTES
    if method == "winograd":
        return WINOGRAD_TILE_BYTES
    return TAP_MAJOR_TILE_BYTES if tap_major else TILE_BYTES


def _workspace(network, batch: int, itemsize: int, workers: int, device: str) -> int:
    """Bytes of the convolutions' work arrays (im2col rows, padded input, Winograd's
    transforms, pooled tiles' outputs): per thread and per array, the largest among the
    layers with enough tiles to reach that thread, in a training forward, backward and an
    evaluating forward (the trainer's validation; ``convolution.tile_values``)."""
    per_thread: list[dict[str, int]] = [{} for _ in range(workers)]
    masked = _masked_tiles(network)
    pooled = pooled_convolutions(network)
    for node in network.nodes:
        if node.kind != "conv":
            continue
        window = (tuple(network.nodes[pooled[node.index]].attrs["kernel"])
                  if node.index in pooled else None)
        for backward, training in ((False, True), (True, True), (False, False)):
            tile, values = _tile(network, node, batch, itemsize, workers, device, backward,
                                 masked, training, window)
            for k in range(min(workers, -(-batch // tile))):
                held = per_thread[k]
                for key, v in values.items():
                    held[key] = max(held.get(key, 0), tile * v * itemsize)
    return sum(sum(held.values()) for held in per_thread)


def largest_batch(limit_bytes: int, bytes_at: Callable[[int], int]) -> int:
    """The largest batch whose estimate ``bytes_at(batch)`` fits ``limit_bytes`` (0 if not
    even one image); estimates grow with the batch, so a binary search finds it."""
    if bytes_at(1) > limit_bytes:
        return 0
    low, high = 1, 2
    while bytes_at(high) <= limit_bytes and high < 2**24:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if bytes_at(middle) <= limit_bytes else (low, middle)
    return low


UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 2**10, "M": 2**20,
         "G": 2**30}


def parse_bytes(text: str) -> int:
    """``4GB`` (10^9), ``4GiB`` or ``4G`` (2^30), ``512MB``, ``1000000``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise ValueError(f"`{text}` is not a memory size; write e.g. 4GB, 4GiB or 512MB")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def unit_meaning(text: str) -> str:
    """What the unit of a ``parse_bytes`` size means, so that nobody has to guess:
    ``4GB`` -> "GB = 10^9 bytes", ``4GiB`` -> "GiB = 2^30 bytes" ("" for plain bytes)."""
    unit = re.sub(r"[\d.\s]", "", text)
    scale = UNITS[unit.upper()]
    if scale == 1:
        return ""
    power = f"2^{scale.bit_length() - 1}" if scale & (scale - 1) == 0 else f"10^{len(str(scale)) - 1}"
    return f"{unit} = {power} bytes"


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
