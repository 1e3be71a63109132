"""One image file -> the uint8 pixels a network takes: the single conversion that folder
datasets, `cnnkit predict` and `visualize activations` share, so that a model sees a
picture at prediction time exactly as it saw its training pictures.

The first frame is decoded, turned upright by its EXIF orientation, 16-bit grays scaled to
8 bits, transparent parts laid on white (as on a page), converted to grayscale (ITU-R 601
luma) or RGB, and brought to the INPUT size by one of RESIZE_MODES with a bilinear filter.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import DataError

# crop: shorter side to the size, then the centre cut out (torchvision's Resize + CenterCrop);
# stretch: both sides to the size, changing the aspect ratio; pad: longer side to the size,
# black bars on the shorter one (letterbox).
RESIZE_MODES = ("crop", "stretch", "pad")
MAX_PIXELS = 160_000_000  # 12000x12000 photos and scans fit; decompression bombs do not
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                            ".ppm", ".pgm", ".pbm"})


def read_image(path, shape: tuple[int, int, int], resize: str = "crop",
               invert: bool = False) -> np.ndarray:
    """An image file as uint8 (H, W, C) of ``shape``.  An image of more than ``MAX_PIXELS``
    pixels is refused from its header, before decoding; any unreadable file is a DataError
    that names it."""
    from PIL import Image

    h, w, c = shape
    if c not in (1, 3):
        raise DataError(f"cannot make a {c}-channel input from an image file (only 1 or 3)")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    too_large = DataError(f"cannot read {path}: it has more than {MAX_PIXELS // 10**6} "
                          "megapixels (a decompression bomb?); scale it down first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's size and damaged-metadata warnings
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise too_large
                converted = _as_input(image, "L" if c == 1 else "RGB", (w, h), resize)
                if invert:
                    converted = 255 - converted
    except Image.DecompressionBombError:
        raise too_large from None
    except FileNotFoundError:
        raise DataError(f"no such image: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder: give an image file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:  # Pillow on a bad file
        raise DataError(f"cannot read {path} as an image ({error})") from None
    return converted.reshape(h, w, c)


def _as_input(image, mode: str, size: tuple[int, int], resize: str) -> np.ndarray:
    """An opened image's first frame in ``mode`` ("L" or "RGB") at ``size`` (width, height);
    a large JPEG is decoded at 1/2 to 1/8 of its size, never below ``size``."""
    from PIL import Image, ImageOps

    image.draft(mode, (max(size), max(size)))
    if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation: a photo taken sideways
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):  # Pillow's convert would clip, not scale
        image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
    if image.mode in ("LA", "PA", "RGBA") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA"))
    image = image.convert(mode)
    if image.size != size:
        bilinear = Image.Resampling.BILINEAR
        if resize == "crop":
            image = ImageOps.fit(image, size, method=bilinear)
        elif resize == "pad":
            image = ImageOps.pad(image, size, method=bilinear, color=0)
        else:
            image = image.resize(size, bilinear)
    return np.asarray(image, dtype=np.uint8)


def is_image_name(path: Path) -> bool:
    """Whether a file's suffix is one of the formats folder datasets read."""
    return path.suffix.lower() in IMAGE_SUFFIXES
