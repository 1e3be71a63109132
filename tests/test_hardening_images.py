"""Bad images and bad paths for `cnnkit predict` and `cnnkit visualize`: decompression
bombs refused from the header, large images read quietly, odd modes (16-bit, CMYK,
transparency, animation, EXIF rotation) converted as they look, damaged files and folders
refused with one line, and pictures written atomically, never through a link."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin
from test_viz import EDGE_SPEC, assert_clean_error, cli, make_edge_run

from cnnkit.data import DataError
from cnnkit.data.images import MAX_PIXELS, read_image
from cnnkit.viz import VizError
from cnnkit.viz.output import save


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, depth: int = 1) -> bytes:
    """The signature and IHDR of a grayscale PNG."""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth,
                                                              0, 0, 0, 0))


def bilevel_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG, left half white, right half black, written by hand: a 30000x30000 one
    is ~200 KB and takes half a second, where Pillow would first allocate 900 MB."""
    row = b"\0" + b"\xff" * (width // 16) + b"\0" * ((width + 7) // 8 - width // 16)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(height // 1000))
    data += packer.compress(row * (height % 1000)) + packer.flush()
    path.write_bytes(png_header(width, height) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


# -- decompression bombs and large images -------------------------------------------------

def test_a_decompression_bomb_is_refused_with_exit_1(tmp_path):
    bomb = bilevel_png(tmp_path / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 1_000_000
    run = make_edge_run(tmp_path / "run")
    for result in (cli("predict", run.path, bomb),
                   cli("visualize", "activations", run.path, "--image", bomb)):
        assert_clean_error(result, 1, str(bomb), "160 megapixels", "scale it down")


def test_an_image_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    # 13000x13000 = 169 MP: over cnnkit's limit, under Pillow's own error (179 MP)
    path = tmp_path / "big.png"
    path.write_bytes(png_header(13000, 13000) + chunk(b"IEND", b""))  # no pixel data at all
    assert 13000 * 13000 > MAX_PIXELS

    def decode(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    with pytest.raises(DataError, match="more than 160 megapixels"):
        read_image(path, (16, 16, 1))


def test_a_12000x12000_image_is_read_quietly(tmp_path, recwarn):
    path = bilevel_png(tmp_path / "scan.png", 12000, 12000)
    image = read_image(path, (16, 16, 1))
    assert (image[:, :7] == 255).all() and (image[:, 9:] == 0).all()  # white left half
    assert [str(w.message) for w in recwarn] == []
    result = cli("predict", make_edge_run(tmp_path / "run").path, path)
    assert result.exit_code == 0 and "Warning" not in result.output, result.output


def test_a_large_jpeg_is_decoded_at_a_reduced_size(tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    Image.new("L", (4000, 3000), 200).save(path, quality=90)
    decoded = []
    load = JpegImagePlugin.JpegImageFile.load

    def spy(self):
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    image = read_image(path, (28, 28, 1))
    assert decoded[0] == (500, 375)  # 1/8 of each side, still larger than 28x28
    assert abs(int(image.mean()) - 200) <= 2


# -- modes and frames: converted as the image looks -----------------------------------------

def saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_16_bit_grays_are_scaled_to_8_bits_not_clipped(tmp_path):
    ramp = np.array([[0, 4096, 32768, 65535]], np.uint16).repeat(4, axis=0)
    path = saved(Image.fromarray(ramp), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    assert read_image(path, (4, 4, 1))[0, :, 0].tolist() == [0, 16, 128, 255]


def test_transparent_parts_are_white_as_on_a_page(tmp_path):
    black = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    black.putpixel((0, 0), (0, 0, 0, 255))
    black.putpixel((1, 0), (0, 0, 0, 128))
    path = saved(black, tmp_path / "alpha.png")
    for channels in (1, 3):
        image = read_image(path, (4, 4, channels))
        assert image[0, :3, 0].tolist() == [0, 127, 255]


def test_a_palette_with_transparency_is_white_where_transparent_and_quiet(tmp_path, recwarn):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 90, 90, 90])
    image.putpixel((0, 0), 1)
    path = saved(image, tmp_path / "palette.png", transparency=b"\x00\xff")  # tRNS bytes
    assert read_image(path, (4, 4, 3))[0, :2].tolist() == [[90, 90, 90], [255, 255, 255]]
    assert [str(w.message) for w in recwarn] == []


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), value) for value in (30, 220)]
    path = saved(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert (read_image(path, (8, 8, 1)) == 30).all()


def test_a_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = saved(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "print.jpg",
                 quality=95)
    red = read_image(path, (8, 8, 3)).reshape(-1, 3).mean(axis=0)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_a_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    pixels = np.zeros((4, 6), np.uint8)
    pixels[0] = 255  # a white top row, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the stored top is on the right
    path = saved(Image.fromarray(pixels), tmp_path / "sideways.png", exif=exif)
    image = read_image(path, (6, 4, 1))[..., 0]
    np.testing.assert_array_equal(image, np.rot90(pixels, -1))


# -- damaged files and folders: one line, exit 1 --------------------------------------------

def damaged_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name: (file, what the message says)."""
    good = saved(Image.new("L", (40, 40), 99), tmp_path / "good.png")
    raw = zlib.compress(b"".join(b"\0" + bytes(range(16)) for _ in range(16)))
    broken = tmp_path / "broken-chunk.png"  # the second IDAT has a garbled chunk type
    broken.write_bytes(png_header(16, 16, depth=8) + chunk(b"IDAT", raw[:20])
                       + chunk(b"\xc4G`\xec", raw[20:]) + chunk(b"IEND", b""))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    ppm = tmp_path / "bad.pgm"
    ppm.write_bytes(b"P2\n2 2\n255\n1 2 x 4\n")  # a plain PGM with a word for a pixel
    folder = tmp_path / "folder.png"
    folder.mkdir()
    return {"broken chunk": (broken, "broken PNG file"), "truncated": (truncated, "truncated"),
            "bad pgm": (ppm, "cannot read"), "folder": (folder, "is a folder")}


def test_damaged_files_and_folders_are_refused_with_one_line(tmp_path):
    run = make_edge_run(tmp_path / "run")
    for path, says in damaged_files(tmp_path).values():
        for result in (cli("predict", run.path, path),
                       cli("visualize", "activations", run.path, "--image", path)):
            assert_clean_error(result, 1, str(path), says)
            assert len(result.output.strip().splitlines()) == 1, result.output


# -- writing pictures ------------------------------------------------------------------------

def test_a_link_at_the_output_path_is_replaced_not_followed(tmp_path):
    run = make_edge_run(tmp_path / "run")
    outside = tmp_path / "bashrc"
    outside.write_text("keep me\n")
    link = run.path / "viz" / "filters-1.png"  # the default of `visualize filters`
    link.parent.mkdir()
    link.symlink_to(outside)
    spec = tmp_path / "edge.txt"
    spec.write_text(EDGE_SPEC)
    svg_link = tmp_path / "network.svg"
    svg_link.symlink_to(outside)
    for result, target in ((cli("visualize", "filters", run.path), link),  # a Pillow image
                           (cli("visualize", "network", spec, "--out", svg_link), svg_link)):
        assert result.exit_code == 0, result.output
        assert outside.read_text() == "keep me\n"
        assert not target.is_symlink() and target.is_file() and target.stat().st_size > 100
    assert Image.open(link).format == "PNG"
    assert svg_link.read_text().lstrip().startswith("<?xml")


def test_a_failed_save_keeps_the_old_picture_and_no_temporary_file(tmp_path, monkeypatch):
    out = tmp_path / "picture.png"
    out.write_bytes(b"the old picture")

    def disk_full(self, handle, *args, **kwargs):
        handle.write(b"half a picture")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(VizError, match=f"cannot write {out}: No space left on device"):
        save(Image.new("L", (4, 4)), out)
    assert out.read_bytes() == b"the old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["picture.png"]


def test_output_paths_that_cannot_be_written_give_one_line(tmp_path):
    spec = tmp_path / "edge.txt"
    spec.write_text(EDGE_SPEC)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    for out, says in ((a_file / "net.png", "notes.txt is a file, not a folder"),
                      (a_file / "deeper" / "net.svg", "notes.txt is a file, not a folder"),
                      (folder, "Is a directory")):
        result = cli("visualize", "network", spec, "--out", out)
        assert_clean_error(result, 1, f"cannot write {out}", says, "choose another --out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.txt", "folder.png",
                                                          "notes.txt"]  # no .tmp left
    assert list(folder.iterdir()) == []
    new = tmp_path / "new" / "folder" / "net.png"
    assert cli("visualize", "network", spec, "--out", new).exit_code == 0 and new.is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_gives_one_line(tmp_path):
    spec = tmp_path / "edge.txt"
    spec.write_text(EDGE_SPEC)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = cli("visualize", "network", spec, "--out", locked / "net.png")
    assert_clean_error(result, 1, "Permission denied", "choose another --out")
