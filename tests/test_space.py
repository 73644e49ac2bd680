"""The search space: decisions, sizes, sampling, encode/decode."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasdip_zoo import Backbone, SearchSpace, get_genotype


def test_connection_space_sizes_match_the_paper():
    for d in (3, 4, 5):
        bb = Backbone(depth=d)
        assert SearchSpace("shared", bb).connection_space_size() == 2 ** (2 * d - 1)
        assert SearchSpace("explicit", bb).connection_space_size() == 2 ** (d * d)
    assert SearchSpace("shared").connection_space_size() == 512


def test_cell_space_counts_every_valid_combination():
    s = SearchSpace()
    raw = 5 * 6 * 4 * 3 * 5 * 2 * 2
    # pixel_shuffle + identity is the only invalid pairing at 128 channels (5 kernels x ... combos)
    assert s.cell_space_size() == raw - 4 * 3 * 5 * 2 * 2
    assert s.size() == s.cell_space_size() * 512
    names = [d.name for d in s.decisions]
    assert names[:5] == ["upsample", "transform", "kernel_size", "dilation", "activation"]
    assert sum(d.group == "connections" for d in s.decisions) == 9


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), form=st.sampled_from(["shared", "explicit"]))
def test_decode_encode_round_trip(seed, form):
    s = SearchSpace(form)
    g = s.sample(seed)
    tokens = s.encode(g)
    assert s.decode(tokens) == g
    assert s.encode(s.decode(tokens)) == tokens


def test_released_genotypes_are_in_the_explicit_space():
    s = SearchSpace("explicit")
    for name in ("nasdip-sr", "nasdip-denoise", "nasdip-inpaint"):
        g = get_genotype(name)
        assert s.decode(s.encode(g)) == g


def test_decode_rejects_bad_tokens():
    s = SearchSpace()
    with pytest.raises(ValueError, match="expected 16 tokens"):
        s.decode([0] * 3)
    bad = s.sample_tokens(0)
    bad[2] = 9
    with pytest.raises(ValueError, match="kernel_size"):
        s.decode(bad)
    shuffle_identity = s.sample_tokens(0)
    shuffle_identity[0], shuffle_identity[1] = 3, 5  # pixel_shuffle, identity
    assert not s.is_valid(shuffle_identity)
    with pytest.raises(ValueError, match="shared connections"):
        SearchSpace("explicit").encode(SearchSpace("shared").sample(1))


def test_sampling_is_seeded_and_covers_choices():
    s = SearchSpace()
    assert s.sample(7) == s.sample(7)
    rng = random.Random(0)
    seen = {s.sample(rng).cell.upsample for _ in range(200)}
    assert seen == {"bilinear", "bicubic", "nearest", "pixel_shuffle", "transposed_conv"}
