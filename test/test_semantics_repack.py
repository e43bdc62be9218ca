"""The space-to-depth re-pack reproduces the spec's index mapping (spec 2.3) exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pam_ros.semantics.repack import space_to_depth


def _spec_mapping(grid: int, factor: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """For every input (row, col, ch): the output token and channel the spec prescribes."""
    r, c, ch = np.meshgrid(
        np.arange(grid), np.arange(grid), np.arange(channels), indexing="ij"
    )  # each (S, S, C)
    token = (c // factor) * (grid // factor) + (r // factor)
    channel = (r % factor) * (factor * channels) + (c % factor) * channels + ch
    return token, channel


@pytest.mark.parametrize(("grid", "factor"), [(64, 2), (64, 4), (16, 2), (16, 4)])
def test_repack_matches_spec_for_every_token_and_channel(grid: int, factor: int) -> None:
    channels = 256
    # Every input element gets a unique value, so a wrong position cannot go unnoticed.
    values = torch.arange(grid * grid * channels, dtype=torch.float64).reshape(
        1, grid * grid, channels
    )
    keys = torch.cat([values, -values])  # batch of 2: the batch axis must not mix either
    out = space_to_depth(keys, grid, factor)
    blocks = grid // factor
    assert out.shape == (2, blocks * blocks, factor * factor * channels)

    token, channel = _spec_mapping(grid, factor, channels)
    expected = np.full(out.shape[1:], np.nan)
    # input token t = row*S + col (row-major flatten of the (C, S, S) embedding)
    expected[token, channel] = values[0].numpy().reshape(grid, grid, channels)
    assert not np.isnan(expected).any()  # the mapping is a bijection
    np.testing.assert_array_equal(out[0].numpy(), expected)
    np.testing.assert_array_equal(out[1].numpy(), -expected)


def test_repack_first_tokens_are_column_major_blocks() -> None:
    # Token 1 is the block below token 0 (row block fast), not the one to its right.
    grid, factor, channels = 64, 2, 1
    keys = torch.zeros(1, grid * grid, channels)
    keys[0, 2 * grid + 0, 0] = 1.0  # row 2, col 0 -> block (rb=1, cb=0)
    keys[0, 0 * grid + 2, 0] = 2.0  # row 0, col 2 -> block (rb=0, cb=1)
    out = space_to_depth(keys, grid, factor)
    assert out[0, 1, 0] == 1.0
    assert out[0, 32, 0] == 2.0


def test_repack_rejects_bad_grids() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        space_to_depth(torch.zeros(1, 36, 4), 6, 4)
    with pytest.raises(ValueError, match="expected 4096 keys"):
        space_to_depth(torch.zeros(1, 100, 4), 64, 2)
