"""Pictures in and out: Pillow images from pixel arrays, titled panels, and saving as PNG or
SVG.  A "picture" is either a Pillow image (exact pixels) or a matplotlib Figure."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from . import VizError

SUFFIXES = (".png", ".svg")
TITLE_SIZE = 13  # font size of panel titles, in pixels
TITLE_PAD = 4


def check_suffix(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise VizError(f"cannot write {path}: give an --out file ending in .png or .svg")
    return path


def to_image(pixels: np.ndarray):
    """A Pillow image of uint8 (H, W) (mode L) or (H, W, 3) (mode RGB) pixels."""
    from PIL import Image

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"pixels must be (H, W) or (H, W, 3), got {pixels.shape}")
    return Image.fromarray(pixels)


def font(size: int = TITLE_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def text_size(text: str, size: int = TITLE_SIZE) -> tuple[int, int]:
    from PIL import Image, ImageDraw

    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font(size))
    return box[2] - box[0], box[3] - box[1]


def titled(image, title: str, size: int = TITLE_SIZE, background=255, ink=0):
    """``image`` with a one-line ``title`` above it (the canvas widens for a long title)."""
    from PIL import Image, ImageDraw

    if not title:
        return image
    tw, _ = text_size(title, size)
    strip = size + 2 * TITLE_PAD
    width = max(image.width, tw + 2 * TITLE_PAD)
    fill = background if image.mode == "L" else (background,) * 3
    canvas = Image.new(image.mode, (width, image.height + strip), fill)
    canvas.paste(image, (0, strip))
    ImageDraw.Draw(canvas).text((TITLE_PAD, TITLE_PAD - 1), title, font=font(size),
                                fill=ink if image.mode == "L" else (ink,) * 3)
    return canvas


def arrange(images, direction: str = "vertical", gap: int = 12, background=255, margin=0):
    """Images one below the other (left-aligned) or side by side (top-aligned)."""
    from PIL import Image

    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    images = [im if im.mode == mode else im.convert(mode) for im in images]
    if direction == "vertical":
        width = max(im.width for im in images)
        height = sum(im.height for im in images) + gap * (len(images) - 1)
    else:
        width = sum(im.width for im in images) + gap * (len(images) - 1)
        height = max(im.height for im in images)
    fill = background if mode == "L" else (background,) * 3
    canvas = Image.new(mode, (width + 2 * margin, height + 2 * margin), fill)
    offset = margin
    for im in images:
        canvas.paste(im, (margin, offset) if direction == "vertical" else (offset, margin))
        offset += (im.height if direction == "vertical" else im.width) + gap
    return canvas


def is_figure(picture) -> bool:
    return hasattr(picture, "savefig")


def save(picture, path: str | Path) -> Path:
    """Writes a Pillow image or matplotlib Figure as PNG or SVG (by the suffix of ``path``).
    An SVG of a pixel picture embeds the PNG (drawn pixelated), so no pixel is resampled.
    The file is written under a temporary name beside ``path`` and renamed over it, so a
    failed save leaves nothing behind and a link at ``path`` is replaced, never followed."""
    from ..training.rundir import RunWriteError, atomic_file

    path = check_suffix(path)
    kind = path.suffix.lower()[1:]
    try:
        with atomic_file(path) as handle:
            if is_figure(picture):
                write_figure(picture, handle, kind)
            elif kind == "png":
                picture.save(handle, format="PNG", optimize=True)
            else:
                handle.write(pixel_svg(picture).encode("utf-8"))
    except RunWriteError as error:
        raise VizError(f"{error}; choose another --out") from None
    return path


def write_figure(figure, handle, kind: str) -> None:
    """A Figure as PNG or SVG; the SVG keeps its text as text and is the same bytes for the
    same picture (no date, fixed ids)."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cnnkit"}):
        figure.savefig(handle, format=kind, dpi=figure.dpi,
                       metadata={"Date": None} if kind == "svg" else None)


def pixel_svg(image) -> str:
    """An SVG of a Pillow image: the image as an embedded PNG, drawn pixelated."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    w, h = image.size
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}"><image width="{w}" height="{h}" '
            f'style="image-rendering:pixelated" href="data:image/png;base64,{data}"/></svg>\n')


def to_pil(picture):
    """A Pillow image of any picture (a Figure is rendered to PNG at its own dpi)."""
    if not is_figure(picture):
        return picture
    from PIL import Image

    buffer = io.BytesIO()
    picture.savefig(buffer, format="png", dpi=picture.dpi)
    buffer.seek(0)
    image = Image.open(buffer)
    image.load()
    return image.convert("RGB")


def new_figure(width_in: float, height_in: float, dpi: int = 100):
    """A matplotlib Figure on the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure
