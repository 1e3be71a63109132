"""`cnnkit export --to onnx`: the exported model computes what the engine computes.

float32 runs in onnxruntime (max relative error < 1e-4 against ``Model.forward`` in eval
mode).  onnxruntime's CPU kernels have no float64 Conv, AveragePool, GlobalAveragePool or
LRN, so float64 exports run in onnx's reference evaluator (its own NumPy implementation of
the operator specifications) and must agree to 1e-9; its LRN sums over the wrong axis
(onnx 1.23: it loops over the batch instead of the channels), so this file gives it one
that follows the specification.  Skipped when onnx or onnxruntime is missing.
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx (pip install 'cnnkit[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests run the models in onnxruntime")

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
from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnx.reference.op_run import OpRun  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.cli import app  # noqa: E402
from cnnkit.engine import Model  # noqa: E402
from cnnkit.interop import ExportError, to_onnx  # noqa: E402


class LRN(OpRun):
    """The LRN of the ONNX specification, over channels."""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        squares = np.pad(x * x, [(0, 0), ((size - 1) // 2, size // 2), (0, 0), (0, 0)])
        window = sum(squares[:, i:i + x.shape[1]] for i in range(size))
        return (x / (bias + (alpha / size) * window) ** beta).astype(x.dtype),


def run_onnx(model, x: np.ndarray, outputs=("logits",)) -> list[np.ndarray]:
    if x.dtype == np.float64:
        return ReferenceEvaluator(model, new_ops=[LRN]).run(list(outputs), {"input": x})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(outputs), {"input": x})


def check(network, dtype: str, batches=(1, 3)) -> float:
    """Exports ``network`` and compares it with the engine at each batch size; returns the
    largest relative error."""
    model = engine(network, dtype)
    exported = to_onnx(network, model.state_dict(), dtype=dtype)
    worst = 0.0
    for batch in batches:
        x = images(network, batch, dtype)
        (logits,) = run_onnx(exported, nchw(x))
        error = relative_error(logits, model.forward(x, train=False))
        assert error < TOLERANCE[dtype], f"{network.filename} batch {batch}: {error:.2e}"
        worst = max(worst, error)
    return worst


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", SMALL_SPECS)
def test_small_specs_agree_with_the_engine(name, dtype):
    check(spec_network(name), dtype)


@pytest.mark.parametrize("name", sorted(REDUCED_SPECS))
def test_big_specs_agree_with_the_engine(name):
    """At a smaller input (GoogLeNet at its own), float32, batch 1 and 2."""
    check(spec_network(name), "float32", batches=(1, 2))


def test_resnet18_at_its_real_input_size():
    check(cnnkit.load(ROOT / "specs" / "resnet18.txt"), "float32", batches=(2,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_layer_kind_and_option(name, dtype):
    check(cnnkit.parse(CASES[name], filename=f"{name}.txt"), dtype)


def test_the_model_describes_its_input_and_outputs():
    network = cnnkit.parse(CASES["bn_spatial_and_flat"], filename="net.txt")
    model = to_onnx(network, engine(network, "float32").state_dict())
    graph = model.graph
    assert [o.version for o in model.opset_import] == [17]
    assert model.producer_name == "cnnkit"
    (given,) = graph.input
    assert given.name == "input" and "NCHW" in given.doc_string
    dims = given.type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 6, 5]
    assert [o.name for o in graph.output] == ["logits", "probabilities"]
    assert "NCHW" in graph.doc_string and "logits" in graph.doc_string
    props = {p.key: p.value for p in model.metadata_props}
    assert props["cnnkit.spec"] == network.source
    assert not any(n.op_type == "Dropout" for n in graph.node)  # left out at inference
    x = images(network, 2, "float32")
    _, probabilities = run_onnx(model, nchw(x), ("logits", "probabilities"))
    np.testing.assert_allclose(probabilities, engine(network, "float32").predict_proba(x),
                               rtol=1e-5, atol=1e-7)


def test_fixed_batch_and_weights_in_the_export_dtype(tmp_path):
    network = cnnkit.parse(CASES["res_projection"])
    path = tmp_path / "m.onnx"
    to_onnx(network, engine(network, "float32").state_dict(), path, dtype="float64", batch=4)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert {i.data_type for i in model.graph.initializer
            if i.data_type != onnx.TensorProto.INT64} == {onnx.TensorProto.DOUBLE}


def test_flatten_reorders_fc_weights_instead_of_transposing():
    """Keras-style FLATTEN -> FC: no Transpose, the FC's weights take the order; a FLATTEN
    whose order could not be absorbed (the output, a RES sum) transposes to NHWC first."""
    keras = spec_network("keras_cifar10")
    ops = [n.op_type for n in to_onnx(keras, engine(keras, "float32").state_dict()).graph.node]
    assert "Transpose" not in ops and "Flatten" in ops
    for name in ("flatten_into_res", "flatten_last"):
        network = cnnkit.parse(CASES[name])
        model = to_onnx(network, engine(network, "float32").state_dict())
        assert "Transpose" in [n.op_type for n in model.graph.node]


def test_an_unknown_layer_kind_is_refused_by_name():
    network = cnnkit.parse("INPUT 4x4x1 -> CONV3-2 -> RELU -> FC-2")
    weights = engine(network, "float32").state_dict()
    network.nodes[2].kind = "swish"
    with pytest.raises(ExportError, match=r"RELU \(node 2\): layer kind `swish` has no ONNX"):
        to_onnx(network, weights)


def test_missing_weights_are_an_error():
    network = cnnkit.parse("INPUT 4x4x1 -> CONV3-2 -> FC-2")
    weights = engine(network, "float32").state_dict()
    del weights["1:CONV3-2/W"]
    with pytest.raises(KeyError, match="1:CONV3-2/W"):
        to_onnx(network, weights)


# -- the command line ---------------------------------------------------------------------

runner = CliRunner()


def test_cli_exports_a_spec_with_seeded_initial_weights(tmp_path):
    out = tmp_path / "lenet.onnx"
    result = runner.invoke(app, ["export", str(ROOT / "specs" / "lenet5.txt"), "--to", "onnx",
                                 "-o", str(out), "--seed", "3", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    network = cnnkit.load(ROOT / "specs" / "lenet5.txt")
    model = Model(network, seed=3)
    x = images(network, 2, "float32")
    (logits,) = run_onnx(onnx.load(str(out)), nchw(x))
    assert relative_error(logits, model.forward(x, train=False)) < 1e-5


def test_cli_exports_a_trained_run(tmp_path):
    from cnnkit.training.config import TrainConfig
    from cnnkit.training.predict import load_run
    from cnnkit.training.rundir import RunDirectory
    from cnnkit.training.trainer import Trainer

    run = RunDirectory(tmp_path / "run")
    config = TrainConfig(dataset="mnist-sample", epochs=1, batch=50, limit=200, val_split=0.2,
                         device="cpu", seed=1)
    Trainer(cnnkit.parse(CASES["bn_spatial_and_flat"].replace("6x5x3", "28x28x1")
                         .replace("FC-5", "FC-10")), config, run).train()
    out = tmp_path / "run.onnx"
    result = runner.invoke(app, ["export", str(run.path), "--to", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    trained = load_run(run.path)
    data = trained.dataset(None, split="test")
    x = trained.prepare(data.images[:16])
    (logits,) = run_onnx(onnx.load(str(out)), nchw(x))
    reference = trained.model.forward(x, train=False)
    assert relative_error(logits, reference) < 1e-4
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert "pixels / 255" in onnx.load(str(out)).graph.doc_string


@pytest.mark.parametrize("args, code, message", [
    (["--to", "keras"], 2, "keras"),
    (["--to", "pytorch", "--batch", "2"], 2, "--batch applies to ONNX"),
    (["--to", "onnx", "--dtype", "float16"], 2, "float32 or float64"),
])
def test_cli_usage_errors(tmp_path, args, code, message):
    result = runner.invoke(app, ["export", str(ROOT / "specs" / "lenet5.txt"),
                                 "-o", str(tmp_path / "m"), *args])
    assert result.exit_code == code
    assert message in result.output


def test_cli_a_bad_run_or_spec_is_one_line_with_exit_1(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["export", str(tmp_path / "empty"), "--to", "onnx",
                                 "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "error:" in result.output
    bad = tmp_path / "bad.txt"
    bad.write_text("INPUT 4x4x1 -> CONV3-2 -> FOO")
    result = runner.invoke(app, ["export", str(bad), "--to", "onnx", "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "FOO" in result.output
