"""NumPy or CuPy: which array module runs the engine, and on which device.

Layer code never names NumPy or CuPy; it uses the module it is handed (``xp``), so one code
path serves both (Chainer's idiom).  CuPy is imported only inside these functions, so the
package imports and runs on machines where CuPy or a GPU is missing.
"""

from __future__ import annotations

from types import ModuleType

import numpy

DEVICES = ("cpu", "gpu", "auto")


def get_array_module(x) -> ModuleType:
    """The module that owns ``x``: CuPy for a CuPy array, NumPy for anything else."""
    if type(x).__module__.partition(".")[0] == "cupy":
        import cupy

        return cupy
    return numpy


def to_numpy(x) -> numpy.ndarray:
    """A host copy of ``x`` (no copy when it already is a NumPy array)."""
    return x.get() if get_array_module(x) is not numpy else numpy.asarray(x)


def select_device(device: str = "auto") -> tuple[ModuleType, str]:
    """``(xp, sentence)``: the array module for ``device`` and a line saying what runs where.

    "auto" takes the GPU when CuPy imports and sees a CUDA device, else the CPU; "gpu" raises
    ``RuntimeError`` saying why when it cannot have one.
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if device == "cpu":
        return numpy, "Running on the CPU with NumPy."
    try:
        cupy, name = _cuda()
    except RuntimeError as why:
        if device == "gpu":
            raise RuntimeError(f"a GPU was requested but {why}") from None
        return numpy, f"Running on the CPU with NumPy ({why})."
    return cupy, f"Running on the GPU ({name}) with CuPy."


def _cuda() -> tuple[ModuleType, str]:
    try:
        import cupy
    except ImportError:
        raise RuntimeError("CuPy is not installed (pip install 'cnnkit[gpu]')") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise RuntimeError(f"CuPy finds no usable CUDA device ({error})") from None
    if count == 0:
        raise RuntimeError("CuPy finds no CUDA device")
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return cupy, name.decode() if isinstance(name, bytes) else str(name)
