"""`cnnkit import` and `cnnkit summarize model.onnx`: ONNX models read back into cnnkit.

* Round trip: every spec in specs/ exported and imported gives the same summary, row for
  row, and the same weights, bit for bit (through the spec the export carries, and, read
  from the operators alone, the same rows less what inference drops, computing the same).
* PyTorch: torchvision's architectures, written out here (torchvision is not installed),
  exported by torch.onnx.export (the TorchScript exporter, dynamo=False: the dynamo one
  needs onnxscript), summarize to torchvision's parameter counts and to the MACs of specs/.
* Bad input: each a one-line error with exit 1.

Skipped without onnx; the PyTorch part without torch.
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="reading ONNX needs onnx (pip install 'cnnkit[onnx]')")

from export_support import CASES, ROOT, engine, images, spec_network  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from test_specs import SPEC_FILES, TOTALS  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.cli import app  # noqa: E402
from cnnkit.engine.model import Model  # noqa: E402
from cnnkit.interop import to_onnx  # noqa: E402
from cnnkit.interop.onnx_import import from_onnx  # noqa: E402
from cnnkit.interop.onnx_load import OnnxImportError  # noqa: E402

runner = CliRunner()
ROW_FIELDS = ("output", "shape", "weights", "biases", "other_params", "state", "macs",
              "receptive_field", "activations", "kind")


def rows(network, skip=(), fields=ROW_FIELDS):
    return [tuple(getattr(r, f) for f in fields) for r in network.summary().rows
            if r.kind not in skip]


def exported(tmp_path, network, dtype="float64", name="model.onnx"):
    """The model file of ``network`` with weights of ``export_support.engine``, and them."""
    weights = engine(network, dtype).state_dict()
    path = tmp_path / name
    to_onnx(network, weights, path, dtype=dtype)
    return path, weights


def forward(network, weights, x):
    model = Model(network, dtype=str(x.dtype))
    model.load_state_dict(weights)
    return model.forward(x, train=False)


# -- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_every_spec_round_trips(tmp_path, path):
    """At the reduced input of the export tests (the layers are the same, the weights fewer)."""
    network = spec_network(path.stem)
    model, weights = exported(tmp_path, network, "float32")
    imported = from_onnx(model)
    assert imported.origin == "embedded"
    assert imported.network.summary().to_dict()["totals"] == network.summary().to_dict()["totals"]
    assert rows(imported.network) == rows(network)
    got = imported.weights()
    assert got.keys() == weights.keys()
    assert all(got[k].dtype == weights[k].dtype and np.array_equal(got[k], weights[k])
               for k in weights)

    from_graph = from_onnx(model, use_embedded_spec=False)
    assert from_graph.origin == "graph"
    summary, original = from_graph.network.summary(), network.summary()
    assert (summary.params, summary.macs) == (original.params, original.macs)
    # dropout is the identity at inference: the graph has none; an FC flattens by itself
    # (and the calculator gives an FC on a volume the whole input as its receptive field)
    dropped, fields = ("dropout", "flatten"), ROW_FIELDS[:-3] + ROW_FIELDS[-2:]
    assert rows(from_graph.network, dropped, fields) == rows(network, dropped, fields)
    x = images(network, 1, "float32")
    np.testing.assert_array_equal(forward(from_graph.network, from_graph.weights(), x),
                                  forward(network, weights, x))


def test_specs_round_trip_at_their_own_size(tmp_path):
    network = cnnkit.load(ROOT / "specs" / "resnet18.txt")
    imported = from_onnx(exported(tmp_path, network, "float32")[0], use_embedded_spec=False)
    assert rows(imported.network) == rows(network)
    assert "@rounding floor" in imported.spec


@pytest.mark.parametrize("name", sorted(set(CASES) - {"lrn_odd_and_even", "lrn_of_a_vector"}))
def test_every_layer_kind_reads_back_from_the_operators(tmp_path, name):
    network = cnnkit.parse(CASES[name], filename=f"{name}.txt")
    model, weights = exported(tmp_path, network)
    imported = from_onnx(model, use_embedded_spec=False)
    x = images(network, 2, "float64")
    np.testing.assert_array_equal(forward(imported.network, imported.weights(), x),
                                  forward(network, weights, x))


def test_an_even_lrn_is_named(tmp_path):
    network = cnnkit.parse(CASES["lrn_odd_and_even"])
    with pytest.raises(OnnxImportError, match=r"\(Pow\)"):
        from_onnx(exported(tmp_path, network)[0], use_embedded_spec=False)


def test_a_spec_that_no_longer_matches_its_graph_is_not_used(tmp_path):
    network = cnnkit.parse("INPUT 8x8x3 -> CONV3-4 -> RELU -> FC-5")
    path, _ = exported(tmp_path, network)
    model = onnx.load(str(path))
    model.metadata_props[0].value = "INPUT 8x8x3 -> CONV3-4 -> TANH -> FC-5"
    onnx.save(model, str(path))
    imported = from_onnx(path)
    assert imported.origin == "graph" and "RELU" in imported.spec


def test_repeats_fold_and_repeated_branches_become_blocks(tmp_path):
    text = ("INPUT 16x16x8 -> [CONV3-8 -> RELU]*3 -> RES[ CONV3-8 -> BN ] -> POOL2 "
            "-> CAT[ CONV1-4 | CONV3-4 ] -> CONV1-8 -> CAT[ CONV1-4 | CONV3-4 ] -> GAP")
    imported = from_onnx(exported(tmp_path, cnnkit.parse(text))[0], use_embedded_spec=False)
    assert "[ CONV3-8 -> RELU ]*3" in imported.spec
    assert "block1 = CAT[ CONV1-4 | CONV3-4 ]" in imported.spec
    assert imported.spec.count("-> block1") == 2


# -- PyTorch's exporter -----------------------------------------------------------------------

try:
    import torch
    from torch import nn
except ImportError:
    torch = nn = None
needs_torch = pytest.mark.skipif(torch is None, reason="the PyTorch tests export with torch.onnx")
Module = nn.Module if nn else object


def conv_bn(cin, cout, k, stride=1, pad=0, eps=1e-5):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout, eps=eps)]


class Residual(Module):
    """torchvision's BasicBlock (``bottleneck=False``) and Bottleneck (v1.5)."""

    def __init__(self, cin, width, stride, bottleneck):
        super().__init__()
        cout = width * (4 if bottleneck else 1)
        if bottleneck:
            body = [*conv_bn(cin, width, 1), nn.ReLU(), *conv_bn(width, width, 3, stride, 1),
                    nn.ReLU(), *conv_bn(width, cout, 1)]
        else:
            body = [*conv_bn(cin, width, 3, stride, 1), nn.ReLU(), *conv_bn(width, width, 3, 1, 1)]
        self.body = nn.Sequential(*body)
        projects = stride != 1 or cin != cout
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if projects else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet(counts, bottleneck):
    layers, cin = [*conv_bn(3, 64, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), counts)):
        for i in range(count):
            layers.append(Residual(cin, width, 2 if stage and not i else 1, bottleneck))
            cin = width * (4 if bottleneck else 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


def vgg16():
    layers, cin = [], 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                  512, 512, 512, "M"):
        layers += [nn.MaxPool2d(2)] if width == "M" else [nn.Conv2d(cin, width, 3, padding=1),
                                                          nn.ReLU()]
        cin = cin if width == "M" else width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), *classifier(25088))


def classifier(inputs):
    return [nn.Dropout(), nn.Linear(inputs, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096),
            nn.ReLU(), nn.Linear(4096, 1000)]


def alexnet():
    relu = nn.ReLU
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), relu(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2),
        relu(), nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), relu(),
        nn.Conv2d(384, 256, 3, padding=1), relu(), nn.Conv2d(256, 256, 3, padding=1), relu(),
        nn.MaxPool2d(3, 2), nn.AdaptiveAvgPool2d(6), nn.Flatten(), *classifier(9216))


class Join(Module):
    """Branches on one input, concatenated along the channels."""

    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*b) for b in branches)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], 1)


def basic(cin, cout, k, stride=1, pad=0):  # GoogLeNet's BasicConv2d
    return [*conv_bn(cin, cout, k, stride, pad, eps=0.001), nn.ReLU()]


def inception(cin, c1, c3r, c3, c5r, c5, proj):  # torchvision's: a 3x3 where the paper has 5x5
    return Join(basic(cin, c1, 1), [*basic(cin, c3r, 1), *basic(c3r, c3, 3, pad=1)],
                [*basic(cin, c5r, 1), *basic(c5r, c5, 3, pad=1)],
                [nn.MaxPool2d(3, 1, 1, ceil_mode=True), *basic(cin, proj, 1)])


def googlenet():
    pool = functools.partial(nn.MaxPool2d, stride=2, ceil_mode=True)
    return nn.Sequential(
        *basic(3, 64, 7, 2, 3), pool(3), *basic(64, 64, 1), *basic(64, 192, 3, pad=1), pool(3),
        inception(192, 64, 96, 128, 16, 32, 32), inception(256, 128, 128, 192, 32, 96, 64),
        pool(3), inception(480, 192, 96, 208, 16, 48, 64),
        inception(512, 160, 112, 224, 24, 64, 64), inception(512, 128, 128, 256, 24, 64, 64),
        inception(512, 112, 144, 288, 32, 64, 64), inception(528, 256, 160, 320, 32, 128, 128),
        pool(2), inception(832, 256, 160, 320, 32, 128, 128),
        inception(832, 384, 192, 384, 48, 128, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1024, 1000))


def squeezenet1_0():
    def fire(cin, squeeze, expand):
        return [nn.Conv2d(cin, squeeze, 1), nn.ReLU(),
                Join([nn.Conv2d(squeeze, expand, 1), nn.ReLU()],
                     [nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU()])]

    pool = functools.partial(nn.MaxPool2d, 3, 2, ceil_mode=True)
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, 2), nn.ReLU(), pool(), *fire(96, 16, 64), *fire(128, 16, 64),
        *fire(128, 32, 128), pool(), *fire(256, 32, 128), *fire(256, 48, 192),
        *fire(384, 48, 192), *fire(384, 64, 256), pool(), *fire(512, 64, 256),
        nn.Dropout(), nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def torch_export(module, size: int, **options) -> bytes:
    """The ONNX bytes of ``module`` in eval mode; BN kept as BatchNormalization (a plain
    eval export folds it into the convolution before it)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), torch.zeros(1, 3, size, size), buffer, dynamo=False,
                          opset_version=17, training=torch.onnx.TrainingMode.PRESERVE,
                          **options)
    return buffer.getvalue()


# name: (module, export size, published parameters, the spec whose MACs it has at 224)
TORCHVISION = {
    "resnet18": (lambda: resnet((2, 2, 2, 2), False), 64, 11_689_512, "resnet18"),
    "resnet50": (lambda: resnet((3, 4, 6, 3), True), 64, 25_557_032, "resnet50"),
    "squeezenet1_0": (squeezenet1_0, 64, 1_248_424, "squeezenet1_0"),
    "googlenet": (googlenet, 64, 6_624_904, None),
    # the classifier's inputs need the 224 input: exported without the weights' values
    "vgg16": (vgg16, 224, 138_357_544, "vgg16"),
    "alexnet": (alexnet, 224, 61_100_840, None),
}


@functools.cache
def torchvision_onnx(name: str) -> bytes:
    make, size, _, _ = TORCHVISION[name]
    torch.manual_seed(0)
    return torch_export(make(), size, export_params=size < 224)


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_architectures_summarize_to_their_published_counts(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(torchvision_onnx(name))
    _, _, params, spec = TORCHVISION[name]
    summary = from_onnx(path, "224x224x3").network.summary()
    assert summary.params == params
    if spec is not None:
        assert summary.macs == TOTALS[spec][5]


@needs_torch
def test_googlenet_and_alexnet_differ_from_the_specs_as_torchvision_does(tmp_path):
    """torchvision's GoogLeNet has BN and 3x3 convolutions for the paper's 5x5; its AlexNet
    is the one-tower 64-192-384-256-256 variant at 224, not CS231n's 227 one."""
    macs = {}
    for name in ("googlenet", "alexnet"):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(torchvision_onnx(name))
        macs[name] = from_onnx(path, "224x224x3").network.summary().macs
    assert macs == {"googlenet": 1_498_376_192, "alexnet": 714_188_480}  # 1.50, 0.71 GFLOPS


@needs_torch
def test_a_torch_model_imports_with_its_weights(tmp_path):
    """Gemm's transposed weights, NCHW flattening into an FC, BN, concatenation, a
    residual sum, ceil-mode average pooling and LeakyReLU, compared with PyTorch itself."""
    torch.manual_seed(1)
    module = nn.Sequential(
        *conv_bn(3, 8, 3, 1, 1), nn.LeakyReLU(0.1),
        Residual(8, 8, 1, False), Join([nn.Conv2d(8, 4, 1)], [nn.MaxPool2d(3, 1, 1)]),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True), nn.Conv2d(12, 6, 3, stride=2), nn.Flatten(),
        nn.Linear(6 * 2 * 2, 5), nn.Softmax(1))
    for p in module.modules():
        if isinstance(p, nn.BatchNorm2d):
            p.running_mean.uniform_(-0.5, 0.5)
            p.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "small.onnx"
    path.write_bytes(torch_export(module, 11))
    imported = from_onnx(path)
    model = Model(imported.network)
    model.load_state_dict(imported.weights())
    x = np.random.default_rng(0).standard_normal((3, 11, 11, 3)).astype(np.float32)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(model.predict_proba(x), theirs, rtol=1e-4, atol=1e-6)


# -- bad input --------------------------------------------------------------------------------


def output(name, rank=4):
    """A graph output of a size left to be worked out."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list("nchw"[:rank]))


def tiny_model(**input_dims):
    """Conv -> Relu on a 1x3x8x8 input, built with onnx.helper."""
    dims = [input_dims.get(k, v) for k, v in (("n", 1), ("c", 3), ("h", 8), ("w", 8))]
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["y"], ["z"], name="relu")], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [output("z")], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def saved(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_truncated_and_foreign_files(tmp_path):
    path = saved(tmp_path, tiny_model())
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    one_line_error(cli("summarize", path), "not an ONNX model")
    (tmp_path / "text.onnx").write_text("INPUT 8x8x3 -> RELU\n")
    one_line_error(cli("summarize", tmp_path / "text.onnx"), "not an ONNX model")


def test_missing_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(tiny_model(), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    assert cli("summarize", path).exit_code == 0
    (tmp_path / "m.data").unlink()
    one_line_error(cli("summarize", path), "data file `m.data`", "missing")


def test_a_dynamic_input_size_asks_for_input(tmp_path):
    path = saved(tmp_path, tiny_model(n="batch", h="height", w="width"))
    one_line_error(cli("check", path), "--input HxWxC")
    result = cli("check", path, "--input", "10x12x3")
    assert result.exit_code == 0 and "10x12x3 -> 10x12x4" in result.output


@pytest.mark.parametrize("opset, word", [(10, "too old"), (26, "too new")])
def test_opsets_cnnkit_does_not_read(tmp_path, opset, word):
    model = tiny_model()
    model.opset_import[0].version = opset
    one_line_error(cli("summarize", saved(tmp_path, model)), f"opset {opset}, {word}")


def with_node(node, *initializers, dims=(1, 3, 8, 8)):
    rank = 2 if node.op_type == "Gemm" else 4
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, list(dims))],
                              [output(node.output[0], rank)],
                              [numpy_helper.from_array(a, n) for n, a in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("node, initializers, message", [
    (helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2],
                      dilations=[2, 2]), (), "MaxPool 'pool': attribute dilations=[2, 2]"),
    (helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=2.0),
     [("w", np.ones((192, 4), np.float32))], "Gemm 'fc': attribute alpha=2.0"),
    (helper.make_node("Softmax", ["x"], ["y"], name="sm"), (), "Softmax 'sm': attribute axis=-1"),
    (helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[0, -1, 1, 1]),
     [("w", np.ones((4, 3, 3, 3), np.float32))], "Conv 'c': attribute pads=[0, -1, 1, 1]"),
    (helper.make_node("Elu", ["x"], ["y"], name="elu"), (), "'elu' (Elu)"),
])
def test_what_cnnkit_cannot_express_is_refused_by_name(tmp_path, node, initializers, message):
    one_line_error(cli("summarize", saved(tmp_path, with_node(node, *initializers))), message)


def test_every_unknown_operator_is_listed_at_once(tmp_path):
    nodes = [helper.make_node("Elu", ["x"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="fine"),
             helper.make_node("Selu", ["b"], ["y"], name="second")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                              [output("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    one_line_error(cli("summarize", saved(tmp_path, model)), "'first' (Elu)", "'second' (Selu)")


def test_a_dag_that_is_not_nested_names_its_node(tmp_path):
    """a = relu(x); b = tanh(a); c = a + b; d = c + b: b feeds two sums."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="a"),
             helper.make_node("Tanh", ["a"], ["b"], name="b"),
             helper.make_node("Add", ["b", "a"], ["c"], name="c"),
             helper.make_node("Add", ["c", "b"], ["d"], name="d")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                              [output("d")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    one_line_error(cli("import", saved(tmp_path, model)), "Tanh 'b'", "RES")


# -- the command line -------------------------------------------------------------------------


def test_summarize_of_an_export_prints_the_specs_table(tmp_path):
    spec = ROOT / "specs" / "lenet5.txt"
    path, _ = exported(tmp_path, cnnkit.load(spec), name="lenet5.onnx")
    ours, theirs = cli("summarize", spec), cli("summarize", path)
    assert ours.exit_code == theirs.exit_code == 0
    assert ours.output.splitlines()[1:] == theirs.output.splitlines()[1:]


def test_import_writes_a_spec_and_weights_and_a_run_that_evaluates(tmp_path):
    network = cnnkit.parse(CASES["bn_spatial_and_flat"].replace("6x5x3", "28x28x1")
                           .replace("FC-5", "FC-10"))
    path, weights = exported(tmp_path, network, "float32")
    result = cli("import", path, "-o", tmp_path / "net.txt", "--run-dir", tmp_path / "run",
                 "--dataset", "mnist-sample", "--from-graph")
    assert result.exit_code == 0, result.output
    assert cnnkit.load(tmp_path / "net.txt").summary().params == network.summary().params
    with np.load(tmp_path / "net.npz") as saved_weights:
        assert len(saved_weights.files) == len(weights)
    assert (tmp_path / "run" / "weights_final.npz").exists()
    result = cli("evaluate", tmp_path / "run", "--format", "json")
    assert result.exit_code == 0, result.output
    assert cli("import", path, "--run-dir", tmp_path / "run").exit_code == 2  # not over a run


def test_import_prints_the_spec_without_out(tmp_path):
    path, _ = exported(tmp_path, cnnkit.parse("INPUT 8x8x3 -> [CONV3-4 -> RELU]*2 -> GAP"))
    result = cli("import", path, "--from-graph")
    assert result.exit_code == 0
    assert "-> [ CONV3-4 -> RELU ]*2" in result.output


def test_summarize_of_a_spec_still_loads_no_onnx():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnkit", "summarize",
                          "specs/lenet5.txt"], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"onnx", "numpy", "torch"}


def test_every_reader_is_for_a_layer_kind():
    from cnnkit.graph.network import KINDS
    from cnnkit.interop.onnx_readers import READERS

    assert set(READERS) == set(KINDS) - {"input"}
