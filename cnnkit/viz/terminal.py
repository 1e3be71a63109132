"""A picture in the terminal, for people on SSH: Unicode upper half blocks ("▀") whose
foreground is the upper pixel and background the lower one, in true colour through rich
(rich falls back to 256 or 16 colours where the terminal has fewer).  On a terminal without
colour (TERM=dumb, a pipe) it draws an ASCII brightness ramp instead, two pixel rows per
line, so the output is still a recognizable sketch and never raw escape codes."""

from __future__ import annotations

import shutil

HALF_BLOCK = "\u2580"
RAMP = " .:-=+*#%@"  # dark to light


def fit(image, columns: int):
    """``image`` (RGB) shrunk to at most ``columns`` pixels wide (area averaging), with an
    even number of rows (a white row added when needed)."""
    from PIL import Image

    columns = max(1, columns)
    if image.width > columns:
        height = max(1, round(image.height * columns / image.width))
        image = image.resize((columns, height), Image.Resampling.BOX)
    if image.height % 2:
        padded = Image.new("RGB", (image.width, image.height + 1), (255, 255, 255))
        padded.paste(image, (0, 0))
        image = padded
    return image


def render(picture, console, width: int | None = None) -> int:
    """Prints ``picture`` (a Pillow image or matplotlib Figure) on ``console``, at most
    ``width`` (default: the console's) characters wide; returns the number of lines."""
    import numpy as np
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    from .output import to_pil

    if width is None:
        # a console that is not a terminal may be set wide for tables (cnnkit.cli.common);
        # a picture should still fit the window the user looks at (COLUMNS is honoured)
        width = console.width if console.is_terminal else min(
            console.width, shutil.get_terminal_size((80, 24)).columns)
    image = fit(to_pil(picture).convert("RGB"), min(width, console.width))
    pixels = np.asarray(image, dtype=np.uint8)
    top, bottom = pixels[0::2], pixels[1::2]
    lines = 0
    if console.color_system is None:
        luma = (pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
        pair = (luma[0::2] + luma[1::2]) / 2
        index = np.clip((pair / 256 * len(RAMP)).astype(int), 0, len(RAMP) - 1)
        for row in index:
            console.print("".join(RAMP[i] for i in row).rstrip(), markup=False,
                          highlight=False, soft_wrap=True)
            lines += 1
        return lines
    styles: dict[tuple, Style] = {}
    for upper, lower in zip(top.tolist(), bottom.tolist()):
        text = Text(no_wrap=True, overflow="crop")
        keys = [(*a, *b) for a, b in zip(upper, lower)]
        start = 0
        for i in range(1, len(keys) + 1):  # one span per run of equal colour pairs
            if i < len(keys) and keys[i] == keys[start]:
                continue
            key = keys[start]
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=Color.from_rgb(*key[:3]),
                                            bgcolor=Color.from_rgb(*key[3:]))
            text.append(HALF_BLOCK * (i - start), style)
            start = i
        console.print(text, soft_wrap=True)
        lines += 1
    return lines
