"""Pictures of a network and of what it learned: filters, feature maps, training curves,
the confusion matrix and the architecture.

Every picture is built by a function here and the ``cnnkit visualize`` commands are a thin
shell over them.  Pillow draws the pixel grids (filters, feature maps: exact pixels),
matplotlib's Agg backend draws the curves, the confusion matrix and the network diagram.
Neither is imported by ``import cnnkit.viz`` or by the CLI at start-up: each module imports
them inside its functions, so ``cnnkit summarize`` stays fast.

Modules:
    grid         min-max normalization, nearest-neighbour upscaling and tiling (NumPy only)
    filters      a conv layer's filters as a grid; before/after training; smoothness
    activations  per-node outputs of a model and the feature-map picture
    curves       loss and accuracy per epoch of one or more runs
    confusion    the confusion matrix with class names
    network      the architecture as LeNet/AlexNet-style boxes
    output       saving (PNG/SVG) and titled panels
    terminal     a picture drawn with Unicode half blocks for ``--show``
"""

from __future__ import annotations


class VizError(Exception):
    """A picture that cannot be made from what was given (a clear message for the user)."""


__all__ = ["VizError"]
