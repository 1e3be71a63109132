"""The executor: trains and runs a ``Network`` with NumPy on the CPU or CuPy on a GPU.

Arrays are NHWC inside the engine (flat activations are (N, D)); ``convert`` translates
weights and images to PyTorch's layouts.
"""

from .backend import get_array_module, select_device, to_numpy
from .layers import Layer, make_layer, softmax
from .losses import softmax_cross_entropy
from .model import Model
from .optim import SGD, Adam, Momentum, Optimizer

__all__ = [
    "SGD", "Adam", "Layer", "Model", "Momentum", "Optimizer", "get_array_module",
    "make_layer", "select_device", "softmax", "softmax_cross_entropy", "to_numpy",
]
