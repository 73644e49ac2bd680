"""The Genotype: validation, JSON, the released integer code and the 25-bit matrix token."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasdip_zoo.genotype import (
    Backbone,
    Connections,
    Genotype,
    UpsamplingCell,
    cell_from_model_index,
    model_index_of,
)
from nasdip_zoo.space import SearchSpace

RELEASED = {
    119: ("bicubic", "depthwise_conv", 5, "leaky_relu", False),
    158: ("nearest", "channel_sum", 5, "leaky_relu", False),
    86: ("bicubic", "transposed_conv", 7, "leaky_relu", False),
    0: ("bilinear", "conv", 1, "none", False),
    61: ("bilinear", "identity", 1, "relu", False),
    252: ("pixel_shuffle", "conv", 1, "none", True),
    311: ("pixel_shuffle", "depthwise_conv", 7, "leaky_relu", True),
    312: ("transposed_conv", "identity", 1, "none", False),
    323: ("transposed_conv", "identity", 7, "leaky_relu", False),
}


@pytest.mark.parametrize("index", sorted(RELEASED))
def test_model_index_decodes_as_the_released_code(index):
    c = cell_from_model_index(index)
    assert (c.upsample, c.transform, c.kernel_size, c.activation, c.transform_first) == RELEASED[index]
    assert c.activation_after_upsample and c.dilation == 1 and c.sum_chunks == 4


def test_model_index_round_trips_over_the_whole_released_range():
    decoded = 0
    for i in range(324):
        try:
            cell = cell_from_model_index(i)
        except ValueError as e:  # pixel shuffle + identity: C -> C/4 cannot be merged
            assert "pixel_shuffle" in str(e) and i in (249, 250, 251)
            continue
        decoded += 1
        assert model_index_of(cell) == i
    assert decoded == 321


def test_model_index_out_of_range():
    with pytest.raises(ValueError, match="0..323"):
        cell_from_model_index(324)
    with pytest.raises(ValueError, match="0..323"):
        Genotype.from_model_index(-1)


def test_model_index_none_outside_released_space():
    assert model_index_of(UpsamplingCell(activation="selu")) is None
    assert model_index_of(UpsamplingCell(transform="conv", dilation=2)) is None


BAD = [
    (lambda: UpsamplingCell(upsample="lanczos"), "cell.upsample='lanczos'"),
    (lambda: UpsamplingCell(transform="deform_conv"), "cell.transform='deform_conv'"),
    (lambda: UpsamplingCell(kernel_size=4), "cell.kernel_size=4"),
    (lambda: UpsamplingCell(kernel_size=3.0), "cell.kernel_size=3.0"),
    (lambda: UpsamplingCell(kernel_size=True), "cell.kernel_size=True"),
    (lambda: UpsamplingCell(dilation=4), "cell.dilation=4"),
    (lambda: UpsamplingCell(activation="gelu"), "cell.activation='gelu'"),
    (lambda: UpsamplingCell(activation_after_upsample="yes"), "activation_after_upsample"),
    (lambda: UpsamplingCell(sum_chunks=1), "cell.sum_chunks=1"),
    (lambda: UpsamplingCell(upsample="pixel_shuffle"), "pixel_shuffle"),
    (lambda: Backbone(depth=0), "backbone.depth=0"),
    (lambda: Backbone(depth=9), "backbone.depth=9"),
    (lambda: Backbone(channels=0), "backbone.channels=0"),
    (lambda: Backbone(merge="mul"), "backbone.merge='mul'"),
    (lambda: Backbone(norm="group"), "backbone.norm='group'"),
    (lambda: Backbone(padding="circular"), "backbone.padding='circular'"),
    (lambda: Backbone(output_activation="softmax"), "output_activation"),
    (lambda: Backbone(skip_channels=4), "skip_channels=4"),
    (lambda: Connections(offsets=(0,), matrix=((1,),)), "exactly one"),
    (lambda: Connections(offsets=(0, 0)), "repeats"),
    (lambda: Connections(offsets=(0.5,)), "integers"),
    (lambda: Connections(matrix=((1, 0), (0,))), "square"),
    (lambda: Connections(matrix=((1, 2), (0, 1))), "0 or 1"),
    (lambda: Genotype(connections=Connections(matrix=((1, 0), (0, 1)))), "2 x 2 but the backbone depth is 5"),
    (lambda: Genotype(connections=Connections(offsets=(0, 5))), "out of range for depth 5"),
    (
        lambda: Genotype(cell=UpsamplingCell(transform="channel_sum", sum_chunks=3)),
        "divisible by sum_chunks",
    ),
    (
        lambda: Genotype(
            cell=UpsamplingCell(upsample="pixel_shuffle", transform="conv"), backbone=Backbone(channels=6, skip_channels=6)
        ),
        "divisible by 4",
    ),
    (
        lambda: Genotype(
            connections=Connections(offsets=(0, 1)), backbone=Backbone(merge="concat", skip_channels=4)
        ),
        "merge='sum'",
    ),
    (lambda: Genotype().replace(colour="red"), "unknown field 'colour'"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_every_invalid_field_gives_a_clear_error(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_from_dict_errors_name_the_problem():
    good = Genotype().to_dict()
    with pytest.raises(ValueError, match="schema_version=99"):
        Genotype.from_dict({**good, "schema_version": 99})
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        Genotype.from_dict({**good, "colour": 1})
    with pytest.raises(ValueError, match="genotype.cell has unknown keys \\['size'\\]"):
        Genotype.from_dict({**good, "cell": {"size": 3}})
    with pytest.raises(ValueError, match="not valid genotype JSON"):
        Genotype.from_json("{nope")


def test_matrix_token_is_25_bits_and_round_trips():
    m = ((1, 0, 0, 1, 0), (1, 1, 0, 0, 1), (0, 1, 1, 0, 0), (0, 0, 1, 1, 0), (0, 0, 0, 1, 1))
    c = Connections(matrix=m)
    token = c.to_token(5)
    assert token < 2**25 and token & 1 and (token >> 3) & 1 and not (token >> 1) & 1
    assert Connections.from_token(token, 5) == c
    with pytest.raises(ValueError, match="2\\*\\*25"):
        Connections.from_token(2**25, 5)


def test_shared_pattern_as_matrix():
    # offsets {-1, 0, +2}: merge r takes source r-1 (down), r (skip), r+2 (up) where they exist
    m = Connections(offsets=(2, 0, -1)).as_matrix(4)
    assert m == ((1, 0, 1, 0), (1, 1, 0, 1), (0, 1, 1, 0), (0, 0, 1, 1))


def test_replace_reaches_nested_fields():
    g = Genotype.from_model_index(158).replace(channels=16, skip_channels=16, kernel_size=3)
    assert g.backbone.channels == 16 and g.cell.kernel_size == 3 and g.cell.transform == "channel_sum"


def test_save_load(tmp_path):
    g = Genotype.from_model_index(86, [[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 1, 0, 1, 1], [0, 0, 1, 0, 1]])
    p = g.save(tmp_path / "sub" / "g.json")
    assert json.loads(p.read_text())["schema_version"] == 1
    assert Genotype.load(p) == g
    assert not list(tmp_path.rglob("*.tmp*"))
    with pytest.raises(FileNotFoundError, match="no genotype file"):
        Genotype.load(tmp_path / "missing.json")


SPACES = [SearchSpace("shared"), SearchSpace("explicit"), SearchSpace("shared", Backbone(depth=3, channels=16, skip_channels=16))]


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(SPACES) - 1))
def test_json_round_trip_property(seed, which):
    g = SPACES[which].sample(seed)
    assert Genotype.from_json(g.to_json()) == g
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g


def test_json_writer_keeps_strings_intact_and_rows_compact():
    from nasdip_zoo.genotype import dumps_json

    data = {"protocol": "Y in [16,235]/255, shave [4, 4]", "m": [[1, 0], [0, 1]], "x": [1.5, 2e-05]}
    text = dumps_json(data)
    assert json.loads(text) == data
    assert '"Y in [16,235]/255, shave [4, 4]"' in text and "[1, 0]," in text and "[1.5, 2e-05]" in text


def test_with_width_keeps_the_architecture_and_fits_the_skips():
    g = Genotype.from_model_index(158).replace(channels=16, skip_channels=16)
    wide = g.with_width(32)  # widening a sum-merge genotype must widen its skips too
    assert (wide.backbone.channels, wide.backbone.skip_channels, wide.cell, wide.connections) == (32, 32, g.cell, g.connections)
    dip = Genotype(backbone=Backbone(merge="concat", skip_channels=4))
    assert dip.with_width(8).backbone.skip_channels == 4 and dip.with_width(2).backbone.skip_channels == 2
    with pytest.raises(ValueError, match="channels=0"):
        g.with_width(0)
