"""Own data: image folders (ImageFolder layout) and .npz arrays, the decode cache, bad input
as one clear error, and one image conversion for training and prediction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cnnkit.cli import app
from cnnkit.data import DataError, OwnData, load_dataset
from cnnkit.data.folder import HELD_OUT
from cnnkit.data.images import read_image
from cnnkit.data.sources import cache_root
from cnnkit.training.predict import load_run

runner = CliRunner()
SHAPE = (12, 12, 3)
COLOURS = {"blue": (20, 40, 230), "green": (30, 200, 40), "red": (220, 30, 30)}


def picture(colour, size=(20, 16), seed=0) -> Image.Image:
    """A photo-like image: the class colour with some noise, of any size."""
    noise = np.random.default_rng(seed).integers(-20, 20, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


def make_folder(root: Path, per_class=10, classes=COLOURS) -> Path:
    """PATH/CLASS/NNN.png|jpg of mixed sizes and formats."""
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (16 + 3 * (i % 4), 14 + 2 * (i % 3))
            suffix = (".png", ".jpg", ".bmp", ".webp")[i % 4]
            picture(colour, size, seed=i).save(root / name / f"{i:03d}{suffix}")
    return root


def load(root, split="train", **kw) -> object:
    return load_dataset(str(root), split, own=OwnData(SHAPE, **kw))


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its bytes and mtime: proof nothing was written."""
    return {p: (p.read_bytes() if p.is_file() else None, os.lstat(p).st_mtime_ns)
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


# -- folders -------------------------------------------------------------------------------

def test_a_folder_of_class_folders_is_a_dataset_with_a_fixed_held_out_test_split(tmp_path):
    root = make_folder(tmp_path / "photos")
    train, test = load(root, "train"), load(root, "test")
    assert train.class_names == test.class_names == ("blue", "green", "red")
    assert train.images.shape[1:] == SHAPE and train.images.dtype == np.uint8
    assert len(test) == 3 * round(HELD_OUT * 10) and len(train) + len(test) == 30
    assert "held out as the test split" in train.notice
    # the same images every time, whatever was cached
    again = load(root, "test")
    np.testing.assert_array_equal(again.images, test.images)
    assert (np.bincount(test.labels) == 2).all()  # stratified
    # each class's colour decides its pixels
    for label, name in enumerate(train.class_names):
        mean = train.images[train.labels == label].reshape(-1, 3).mean(axis=0)
        assert np.abs(mean - COLOURS[name]).max() < 15


@pytest.mark.parametrize("test_folder", ["test", "val"])
def test_train_and_test_subfolders_are_the_splits(tmp_path, test_folder):
    root = tmp_path / "data"
    make_folder(root / "train", per_class=6)
    make_folder(root / test_folder, per_class=2, classes={"red": COLOURS["red"],
                                                         "blue": COLOURS["blue"]})
    train, test = load(root, "train"), load(root, "test")
    assert (len(train), len(test)) == (18, 4)
    assert test.class_names == ("blue", "green", "red")
    assert sorted(set(test.labels.tolist())) == [0, 2]  # numbered as in train/
    assert (test_folder == "val") == bool(test.notice and "val/ serves as the test split"
                                          in test.notice)


def test_decoded_images_are_cached_and_a_changed_file_or_setting_decodes_again(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=4)
    decoded = []

    def count(done, total):
        decoded.append((done, total))

    first = load_dataset(str(root), own=OwnData(SHAPE, on_decode=count))
    assert decoded == [(i, 12) for i in range(1, 13)]  # progress as it goes
    assert len(list((cache_root() / "folders").glob("*.npz"))) == 1
    decoded.clear()
    second = load_dataset(str(root), own=OwnData(SHAPE, on_decode=count))
    assert decoded == []  # nothing decoded again
    np.testing.assert_array_equal(first.images, second.images)

    load_dataset(str(root), own=OwnData(SHAPE, resize="pad", on_decode=count))
    assert decoded[-1] == (12, 12)  # another resize mode is another cache entry
    decoded.clear()
    changed = root / "red" / "000.png"
    picture((0, 0, 0), (30, 30)).save(changed)
    os.utime(changed, ns=(10**18, 10**18))
    load_dataset(str(root), own=OwnData(SHAPE, on_decode=count))
    assert decoded[-1] == (12, 12)


def test_resize_modes_crop_stretch_and_pad(tmp_path):
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255  # a white middle third
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    crop, stretch, pad = (read_image(path, (10, 10, 1), mode)[..., 0] for mode in
                          ("crop", "stretch", "pad"))
    assert (crop == 255).all()  # the centre square is all white
    assert stretch[:, 0].max() == 0 and stretch[:, 5].min() == 255  # squeezed: black edges
    assert (pad[0] == 0).all() and (pad[-1] == 0).all() and pad[5, 5] == 255  # bars


def test_prediction_converts_an_image_exactly_as_training_did(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=6)
    spec = tmp_path / "net.txt"
    spec.write_text("INPUT 12x12x3 -> CONV3-4 -> RELU -> POOL2 -> FC-3 -> SOFTMAX")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(spec), "--dataset", str(root), "--epochs", "3",
                                 "--resize", "pad", "--val-split", "0", "--out", str(out), "--output",
                                 "quiet"])
    assert result.exit_code == 0, result.output
    trained = load_run(out)
    assert trained.class_names == ("blue", "green", "red")
    data = trained.dataset(None, split="train")
    files = sorted((root / "blue").iterdir())  # 000 is blue's first, so train or test
    every = np.concatenate([data.images, trained.dataset(None).images])
    converted = trained.read_image(files[1])
    assert (every == converted).all(axis=(1, 2, 3)).any()
    assert not (read_image(files[1], SHAPE, "crop") == converted).all()  # the run's mode

    evaluated = runner.invoke(app, ["evaluate", str(out)])
    assert evaluated.exit_code == 0 and "0 blue" in evaluated.output
    predicted = runner.invoke(app, ["predict", str(out), str(files[0]), "-f", "json"])
    assert predicted.exit_code == 0 and '"name": "blue"' in predicted.stdout
    confusion = runner.invoke(app, ["visualize", "confusion", str(out)])
    assert confusion.exit_code == 0 and confusion.stdout.strip().endswith("-test.png")


def test_training_reports_the_decoding_as_events(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=100, classes={"a": (0, 0, 0),
                                                                    "b": (250, 250, 250)})
    spec = tmp_path / "net.txt"
    spec.write_text("INPUT 12x12x3 -> FC-2")
    args = ["train", str(spec), "--dataset", str(root), "--epochs", "1", "--output", "jsonl"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "one")])
    events = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(e["done"], e["total"]) for e in events if e["event"] == "decode"] == \
        [(2, 200), (200, 200)]  # its first and last report
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "two")])
    assert second.exit_code == 0 and '"decode"' not in second.stdout  # from the cache


def test_a_relative_folder_is_found_again_from_anywhere(tmp_path, monkeypatch):
    make_folder(tmp_path / "photos", per_class=5)
    (tmp_path / "net.txt").write_text("INPUT 12x12x3 -> FC-3")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "net.txt", "--dataset", "photos", "--epochs", "1",
                                 "--val-split", "0", "--out", "run", "--output", "quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(Path("run/config.json").read_text())["dataset"] == str(tmp_path / "photos")
    monkeypatch.chdir(tmp_path / "photos")
    assert runner.invoke(app, ["evaluate", str(tmp_path / "run")]).exit_code == 0


def test_the_network_needs_one_output_per_class(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=3)
    spec = tmp_path / "net.txt"
    spec.write_text("INPUT 12x12x3 -> FC-10")
    result = runner.invoke(app, ["train", str(spec), "--dataset", str(root), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 1 and "make its last layer FC-3" in result.output


def test_evaluating_another_folder_numbers_its_classes_as_the_model_does(tmp_path):
    make_folder(tmp_path / "photos", per_class=5)
    spec = tmp_path / "net.txt"
    spec.write_text("INPUT 12x12x3 -> FC-3")
    out = tmp_path / "run"
    runner.invoke(app, ["train", str(spec), "--dataset", str(tmp_path / "photos"),
                        "--epochs", "1", "--val-split", "0", "--out", str(out), "--output",
                        "quiet"])
    only_red = make_folder(tmp_path / "more", per_class=5, classes={"red": COLOURS["red"],
                                                                    "z": (9, 9, 9)})
    data = load_run(out).dataset(None)
    assert data.class_names == ("blue", "green", "red")
    with pytest.raises(DataError, match="class folder.s. z are not among the classes"):
        load_run(out).dataset(str(only_red))


# -- bad folders ---------------------------------------------------------------------------

def test_undecodable_and_non_image_files_are_skipped_with_a_count_and_names(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=5)
    good = (root / "red" / "000.png").read_bytes()
    (root / "red" / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "red" / "fake.jpg").write_text("not a picture")
    (root / "notes.txt").write_text("my photos")
    (root / "blue" / "Thumbs.db").write_bytes(b"\0" * 10)
    (root / "green" / ".DS_Store").write_bytes(b"\0")
    before = snapshot(root)
    train = load(root)
    assert "skipped 2 file(s) that are not readable images: red/cut.png, red/fake.jpg" \
        in train.notice
    assert "passed over 2 file(s)" in train.notice and "notes.txt" in train.notice
    assert snapshot(root) == before  # nothing in the user's folder changed
    assert len(load(root)) == len(train)  # the cache remembers the skipped files


@pytest.mark.parametrize("make, message", [
    (lambda root: (root / "empty").mkdir(), "class folder 'empty' holds no images"),
    (lambda root: [p.unlink() for p in (root / "red").iterdir()]
     + [(root / "red" / "x.png").write_bytes(b"broken")], "no image of class 'red' could be"),
])
def test_empty_or_unreadable_classes_stop_with_the_folder_named(tmp_path, make, message):
    root = make_folder(tmp_path / "photos", per_class=3)
    make(root)
    with pytest.raises(DataError, match=message):
        load(root)


def test_a_single_class_or_no_class_is_refused(tmp_path):
    single = make_folder(tmp_path / "one", per_class=3, classes={"cat": (1, 2, 3)})
    with pytest.raises(DataError, match="only the class 'cat'; a classifier needs 2 classes"):
        load(single)
    flat = tmp_path / "flat"
    flat.mkdir()
    picture((1, 2, 3)).save(flat / "a.png")
    with pytest.raises(DataError, match="no class subfolders"):
        load(flat)


def test_a_test_class_missing_from_train_is_refused(tmp_path):
    root = tmp_path / "data"
    make_folder(root / "train", per_class=2, classes={"a": (0, 0, 0), "b": (9, 9, 9)})
    make_folder(root / "test", per_class=2, classes={"a": (0, 0, 0), "c": (5, 5, 5)})
    with pytest.raises(DataError, match="class folder.s. c are not in"):
        load(root, "test")


def test_link_loops_and_nested_folders_are_read_once(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=3)
    nested = root / "red" / "2024" / "june"
    nested.mkdir(parents=True)
    picture(COLOURS["red"]).save(nested / "deep.png")
    (nested / "loop").symlink_to(root / "red", target_is_directory=True)
    (root / "blue" / "self").symlink_to("self")  # a link to itself: ELOOP
    data = load(root, "train")
    test = load(root, "test")
    assert len(data) + len(test) == 10


def test_missing_paths_and_unknown_names_are_clear(tmp_path):
    with pytest.raises(DataError, match="no such folder or .npz file"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="unknown dataset 'mnistt'.*or give a folder"):
        load_dataset("mnistt")


def test_the_cli_reports_a_bad_folder_in_one_line(tmp_path):
    root = make_folder(tmp_path / "photos", per_class=2, classes={"only": (1, 1, 1)})
    spec = tmp_path / "net.txt"
    spec.write_text("INPUT 12x12x3 -> FC-2")
    result = runner.invoke(app, ["train", str(spec), "--dataset", str(root), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")]


# -- .npz ----------------------------------------------------------------------------------

def save_npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = dict(x_train=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8),
                y_train=np.arange(20) % 4, x_test=rng.integers(0, 256, (6, 8, 8), dtype=np.uint8),
                y_test=np.arange(6) % 4)
    np.savez(path, **{**base, **arrays})
    return path


def test_an_npz_in_the_keras_layout_is_a_dataset(tmp_path):
    path = save_npz(tmp_path / "mine.npz")
    train = load_dataset(str(path))
    assert train.images.shape == (20, 8, 8, 1) and train.class_names == ("0", "1", "2", "3")
    floats = save_npz(tmp_path / "floats.npz", x_train=np.full((20, 8, 8, 3), 0.5),
                      x_test=np.ones((6, 8, 8, 3), np.float32),
                      y_train=(np.arange(20) % 2)[:, None], y_test=np.arange(6)[:, None] % 2,
                      class_names=np.array(["cat", "dog"]))
    test = load_dataset(str(floats), "test")
    assert test.images.dtype == np.uint8 and (test.images == 255).all()
    assert load_dataset(str(floats)).images[0, 0, 0].tolist() == [128, 128, 128]
    assert test.class_names == ("cat", "dog") and test.labels.shape == (6,)


@pytest.mark.parametrize("arrays, message", [
    (dict(y_train=np.arange(19)), "x_train holds 20 images but y_train 19 labels"),
    (dict(y_test=np.full(6, -1)), "y_test holds the label -1"),
    (dict(y_train=np.zeros(20, np.float32)), "y_train should be integer class numbers"),
    (dict(x_train=np.full((20, 8, 8), 1.5)), "floats outside"),
    (dict(x_train=np.zeros((20, 8), np.uint8)), "x_train should be images"),
    (dict(x_test=np.zeros((6, 9, 9), np.uint8)), "both splits need one shape"),
    (dict(x_train=np.zeros((20, 8, 8), np.int32)), "int32 values"),
    (dict(class_names=np.array(["a", "b"])), "label 3 has no class"),
    (dict(x_test=np.array([None] * 6, dtype=object)), "without running pickled code"),
])
def test_bad_npz_files_are_one_clear_error(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_dataset(str(save_npz(tmp_path / "bad.npz", **arrays)))


def test_an_npz_without_the_keys_says_which(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros(3))
    with pytest.raises(DataError, match="no x_train, y_train, x_test, y_test.*found: images"):
        load_dataset(str(path))
    (tmp_path / "junk.npz").write_bytes(b"PK not really")
    with pytest.raises(DataError, match="not an .npz archive"):
        load_dataset(str(tmp_path / "junk.npz"))


def test_a_generated_cifar_like_folder_trains_the_keras_cifar10_net_with_augmentation(tmp_path):
    """CIFAR-10 cannot be downloaded here: ten classes of generated 32x32 colour photos in
    train/ and test/ stand in for it, through the spec the README's recipe uses."""
    colours = {f"class{k}": (25 * k, 255 - 25 * k, (80 * k) % 256) for k in range(10)}
    make_folder(tmp_path / "cifar" / "train", per_class=6, classes=colours)
    make_folder(tmp_path / "cifar" / "test", per_class=2, classes=colours)
    spec = Path(__file__).parents[1] / "specs" / "keras_cifar10.txt"
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(spec), "--dataset", str(tmp_path / "cifar"),
                                 "--augment", "flip,crop:4", "--epochs", "2", "--val-split",
                                 "0", "--out", str(out), "--output", "quiet"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(runner.invoke(app, ["evaluate", str(out), "-f", "json"]).stdout)
    assert evaluated["count"] == 20 and evaluated["class_names"][9] == "class9"
