"""Every layer's parameter, MAC, activation and receptive-field rule, and the totals."""

import json

import pytest

import cnnkit
from cnnkit.calculator import human_bytes, largest_batch, parse_bytes, short_count
from cnnkit.calculator.formats import to_csv, to_json, to_markdown


def summary(text, **kw):
    return cnnkit.parse(text).summary(**kw)


def test_conv_weights_biases_macs_and_formula():
    s = summary("INPUT 224x224x3 -> CONV3-64")
    row = s.rows[1]
    assert (row.weights, row.biases, row.macs) == (1_728, 64, 1_728 * 224 * 224)
    assert row.weights_formula == "(3*3*3)*64 = 1,728"
    assert row.macs_formula == "(3*3*3)*64*224*224 = 86,704,128"
    assert row.explain == ["size (224 - 3 + 2*1)/1 + 1 = 224"]


def test_rectangular_grouped_depthwise_and_biasless_conv():
    row = summary("INPUT 8x8x4 -> CONV3x5-8(groups=2, bias=false)").rows[1]
    assert (row.weights, row.biases) == (3 * 5 * 2 * 8, 0)
    row = summary("INPUT 8x8x32 -> CONV3-32(groups=32)").rows[1]  # MobileNet depthwise
    assert row.weights == 288 and row.macs == 288 * 64
    assert row.weights_formula == "(3*3*1)*32 = 288"


def test_fc_flattens_and_counts_macs():
    row = summary("INPUT 7x7x512 -> FC-4096").rows[1]
    assert row.weights == 102_760_448 and row.biases == 4096 and row.macs == 102_760_448
    assert row.weights_formula == "7*7*512*4096 = 102,760,448"
    assert summary("INPUT 4x4x1 -> FC-3(bias=false)").biases == 0


def test_bn_per_feature_map_after_conv_and_per_neuron_after_fc():
    s = summary("INPUT 8x8x3 -> CONV3-16 -> BN")
    assert (s.rows[2].other_params, s.rows[2].state) == (32, 32)
    s = summary("INPUT 8x8x3 -> FC-10 -> BN")
    assert (s.rows[2].other_params, s.rows[2].state) == (20, 20)
    s = summary("INPUT 4x4x2 -> FLATTEN -> BN")  # flat: one pair per neuron
    assert s.rows[2].other_params == 64
    assert s.params == s.weights + s.biases + s.other_params


def test_layers_without_parameters_or_macs():
    s = summary("INPUT 8x8x3 -> POOL2 -> AVGPOOL2 -> RELU -> LRN -> DROPOUT -> GAP -> SOFTMAX")
    assert s.params == 0 and s.macs == 0


def test_inception_bottleneck_macs_from_seed_003():
    assert summary("INPUT 28x28x192 -> CONV5-32").macs == 120_422_400
    assert summary("INPUT 28x28x192 -> CONV1-16 -> CONV5-32").macs == 12_443_648


def test_receptive_field_of_stacked_convs():
    s = summary("INPUT 32x32x3 -> CONV3-8 -> CONV3-8 -> CONV3-8")
    assert [r.receptive_field for r in s.rows] == [(1, 1), (3, 3), (5, 5), (7, 7)]
    s = summary("INPUT 32x32x3 -> CONV3-8 -> POOL2 -> CONV3-8")  # pooling doubles the jump
    assert s.rows[-1].receptive_field == (8, 8)
    assert summary("INPUT 32x32x3 -> CONV3-8(dilation=2)").rows[1].receptive_field == (5, 5)
    assert summary("INPUT 32x32x3 -> CONV3x5-8").rows[1].receptive_field == (3, 5)


def test_an_fc_sees_the_whole_volume_with_or_without_flatten():
    direct = summary("INPUT 28x28x1 -> CONV5-4 -> POOL2 -> FC-10").rows[-1].receptive_field
    flat = summary("INPUT 28x28x1 -> CONV5-4 -> POOL2 -> FLATTEN -> FC-10").rows
    assert direct == flat[-1].receptive_field == flat[-2].receptive_field == (32, 32)


def test_activation_counting_skips_in_place_layers():
    s = summary("INPUT 4x4x2 -> CONV3-2 -> RELU -> FLATTEN -> ID -> TANH")
    assert [r.in_place for r in s.rows] == [False, False, True, True, True, False]
    assert s.activations == 32 + 32 + 32
    assert s.activation_bytes == 96 * 4
    assert summary("INPUT 4x4x2 -> TANH", dtype="float16").activation_bytes == 64 * 2


def test_training_memory_formula():
    from cnnkit.calculator.memory import estimate, executor_terms

    s = summary("INPUT 4x4x1 -> CONV3-2 -> RELU -> FC-3", batch=10, optimizer="adam",
                dtype="float64")
    params = (9 * 2 + 2) + (32 * 3 + 3)
    acts = 16 + 32 + 3
    m = s.memory
    assert m.activation_bytes == 10 * acts * 8
    assert m.gradient_bytes == 10 * (acts - 16) * 8
    assert m.parameter_bytes == params * (2 + 2) * 8
    assert m.input_bytes == 10 * 16 * 8
    assert m.total_bytes == m.activation_bytes + m.gradient_bytes + m.parameter_bytes
    sgd = summary("INPUT 4x4x1 -> CONV3-2 -> RELU -> FC-3", batch=10, dtype="float64").memory
    assert m.parameter_bytes - sgd.parameter_bytes == params * 2 * 8
    assert m.workspace_bytes == 0

    # what the engine holds: the input, the conv output (the RELU overwrites it; the FC keeps
    # it) and the logits; at most the logits' gradient and the FC's input gradient at once
    # (3 + 32: the RELU passes its gradient on, the conv applies its mask), or that 32 and,
    # while the conv's backward runs, the weight gradients of its two chunks of one tile
    # each (2 x 20 values with the bias's, 40 over the batch of 10: 4 per image); im2col
    # tiles of 5 images (10 over 2 threads) per thread: rows 5*16*(9 + 1) (the taps and the
    # bias's row of ones), padded input 5*6*6*1 and, in
    # backward, the masked output gradient 5*16*2 values (a layer reading the input batch
    # computes no input gradient in training)
    terms = executor_terms(cnnkit.parse("INPUT 4x4x1 -> CONV3-2 -> RELU -> FC-3"), batch=10,
                           dtype="float64", workers=2)
    assert terms == {"activations": 16 + 32 + 3, "gradients": 32 + 4,
                     "workspace": 2 * (5 * 16 * 10 + 5 * 6 * 6 * 1 + 5 * 16 * 2) * 8}
    # behind another layer, the tiles are sized for backward too, whose input gradient is an
    # im2col of the padded 6x6x2 output gradient: rows 5*16*(9*2), padded 5*6*6*2
    deeper = executor_terms(cnnkit.parse("INPUT 4x4x1 -> RELU -> CONV3-2 -> FC-3"), batch=10,
                            dtype="float64", workers=2)
    assert deeper["workspace"] == 2 * (5 * 16 * 18 + 5 * 6 * 6 * 2) * 8
    ours = estimate(input_size=16, params=params, state=0, batch=10, dtype="float64",
                    optimizer="adam", **terms)
    assert ours.gradient_bytes == 10 * 36 * 8 and ours.workspace_bytes == terms["workspace"]
    assert ours.total_bytes == (10 * (51 + 36) + params * 4) * 8 + terms["workspace"]


def test_largest_batch_fits_and_one_more_does_not():
    net = cnnkit.parse("INPUT 32x32x3 -> CONV3-64 -> RELU -> FC-10")

    def need(batch):
        return net.summary(batch=batch, optimizer="momentum").memory.total_bytes

    limit = parse_bytes("100MB")
    batch = largest_batch(limit, need)
    assert need(batch) <= limit < need(batch + 1)
    assert largest_batch(10, need) == 0


def test_executor_estimate_is_reported_beside_the_notes_formula():
    s = summary("INPUT 32x32x3 -> CONV3-64 -> RELU -> FC-10", batch=16)
    e = s.executor_memory
    assert e.batch == 16 and e.parameter_bytes == s.memory.parameter_bytes
    assert e.workspace_bytes > 0  # im2col tiles
    assert 0 < e.total_bytes < 2 * s.memory.total_bytes


def test_summary_rejects_bad_arguments():
    net = cnnkit.parse("INPUT 4x4x1 -> FC-2")
    for kwargs in ({"dtype": "int8"}, {"optimizer": "rmsprop"}, {"batch": 0}):
        with pytest.raises(ValueError):
            net.summary(**kwargs)


@pytest.mark.parametrize("text, expected", [
    ("4GB", 4 * 10**9), ("4GiB", 4 * 2**30), ("4G", 4 * 2**30), ("512 MB", 512 * 10**6),
    ("1.5GiB", int(1.5 * 2**30)), ("1000", 1000),
])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


def test_parse_bytes_rejects_nonsense():
    with pytest.raises(ValueError):
        parse_bytes("four gigs")


def test_human_units():
    assert short_count(3_211_264) == "3.2M" and short_count(150_528) == "150K"
    assert short_count(802_816) == "800K" and short_count(4096) == "4096"
    assert human_bytes(58 * 2**20) == "58.0 MiB" and human_bytes(512) == "512 B"


def test_json_schema_is_stable_and_exact():
    s = summary("INPUT 8x8x3 -> CONV3-4 -> BN -> RELU -> FC-2", batch=4)
    data = json.loads(to_json(s))
    assert data["schema"] == "cnnkit.summary/1"
    assert set(data) == {"schema", "dtype", "layers", "totals", "training_memory",
                         "executor_memory", "counting"}
    assert data["totals"] == {
        "params": s.params, "weights": s.weights, "biases": s.biases,
        "other_params": 8, "state": 8, "macs": s.macs,
        "activations_per_image": s.activations,
        "activation_bytes_per_image": s.activations * 4,
    }
    layer = data["layers"][1]
    assert layer["name"] == "CONV3-4" and layer["shape"] == [8, 8, 4]
    assert layer["weights"] == 108 and isinstance(layer["macs"], int)
    assert data["training_memory"]["batch"] == 4
    assert data["training_memory"]["total_bytes"] == s.memory.total_bytes


def test_csv_and_markdown():
    s = summary("INPUT 8x8x3 -> CONV3-4 -> FC-2")
    rows = to_csv(s).splitlines()
    assert rows[0].startswith("index,name,kind,output")
    assert rows[1].split(",")[:4] == ["0", "INPUT", "input", "8x8x3"]
    assert rows[2].split(",")[5] == "108"
    md = to_markdown(s)
    assert "| 1 | CONV3-4 | 8x8x4 |" in md and "(3*3*3)*4 = 108" in md
