"""`cnnkit export --to pytorch`: the generated module, with the weights it loads, computes
what the engine computes (float32 < 1e-4, float64 < 1e-9).  Skipped without torch."""

import importlib.util
import sys

import pytest

torch = pytest.importorskip("torch", reason="running the generated module needs torch")

from export_support import (  # noqa: E402
    CASES,
    REDUCED_SPECS,
    ROOT,
    SMALL_SPECS,
    TOLERANCE,
    engine,
    images,
    nchw,
    relative_error,
    spec_network,
)
from typer.testing import CliRunner  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.cli import app  # noqa: E402
from cnnkit.interop import to_pytorch  # noqa: E402


def import_generated(path):
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check(network, dtype: str, tmp_path, batches=(1, 3)) -> float:
    model = engine(network, dtype)
    source, _ = to_pytorch(network, model.state_dict(), tmp_path / "net.py", dtype=dtype)
    net = import_generated(source).load()
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            x = images(network, batch, dtype)
            logits = net(torch.from_numpy(nchw(x))).numpy()
            error = relative_error(logits, model.forward(x, train=False))
            assert error < TOLERANCE[dtype], f"{network.filename} batch {batch}: {error:.2e}"
            worst = max(worst, error)
    return worst


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", SMALL_SPECS)
def test_small_specs_agree_with_the_engine(name, dtype, tmp_path):
    check(spec_network(name), dtype, tmp_path)


@pytest.mark.parametrize("name", sorted(REDUCED_SPECS))
def test_big_specs_agree_with_the_engine(name, tmp_path):
    check(spec_network(name), "float32", tmp_path, batches=(2,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_layer_kind_and_option(name, dtype, tmp_path):
    check(cnnkit.parse(CASES[name], filename=f"{name}.txt"), dtype, tmp_path)


def test_the_source_is_readable_and_blocks_are_submodules(tmp_path):
    network = spec_network("resnet18")
    source, weights = to_pytorch(network, engine(network, "float32").state_dict(),
                                 tmp_path / "resnet18.py")
    text = source.read_text()
    assert "class Resnet18(nn.Module):" in text
    assert "self.layer1_1.block64_1.n5_conv3_64 = nn.Conv2d(64, 64, kernel_size=3, padding=1, " \
           "bias=False)" in text
    assert "x = x + x4" in text  # the first residual sum
    assert weights.name == "resnet18.npz"
    net = import_generated(source).load()
    assert isinstance(net.layer1_1.block64_1, torch.nn.Module)
    assert not net.training


def test_cli_writes_source_and_weights(tmp_path):
    out = tmp_path / "lenet.py"
    result = CliRunner().invoke(app, ["export", str(ROOT / "specs" / "lenet5.txt"),
                                      "--to", "pytorch", "-o", str(out), "--dtype", "float64"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lenet.npz").exists()
    net = import_generated(out).load()
    assert next(net.parameters()).dtype == torch.float64
