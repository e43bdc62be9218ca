"""PAM's space-to-depth re-pack of the perceiver's keys (spec section 2.3).

The official code reinterprets memory with reshape/view; the result is a space-to-depth with
column-major token order. For an S x S grid, a factor f (2 or 4), row r, column c, channel ch:

    token   = (c // f) * (S // f) + (r // f)     # column block slow, row block fast
    channel = (r % f) * (f * C) + (c % f) * C + ch

This module implements that mapping with one view + permute (unit-tested against the formula
for every token and channel). It works for any S divisible by f: 64 at 1024 px, 16 at 256 px.
"""

from __future__ import annotations

from torch import Tensor


def space_to_depth(keys: Tensor, grid_size: int, factor: int) -> Tensor:
    """keys (B, S*S, C) in row-major order -> (B, (S/f)^2, f*f*C) in PAM's order."""
    b, n, c = keys.shape
    s = grid_size
    if n != s * s:
        raise ValueError(f"expected {s * s} keys for a {s}x{s} grid, got {n}")
    if s % factor:
        raise ValueError(f"grid size {s} is not divisible by the re-pack factor {factor}")
    blocks = s // factor
    # token t = r*S + c with r = rb*f + ri and c = cb*f + ci
    x = keys.reshape(b, blocks, factor, blocks, factor, c)  # (B, rb, ri, cb, ci, C)
    x = x.permute(0, 3, 1, 2, 4, 5)  # (B, cb, rb, ri, ci, C)
    return x.reshape(
        b, blocks * blocks, factor * factor * c
    )  # (B, cb*S/f + rb, ri*f*C + ci*C + ch)
