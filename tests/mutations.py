"""Damaged copies of a file, drawn by hypothesis: what the bitstream fuzz tests feed the decoders."""

from __future__ import annotations

from hypothesis import strategies as st


def mutate(blob: bytes, data: st.DataObject, header_size: int) -> bytes:
    """``blob`` with one bit pattern flipped, cut short, extended, or one header byte replaced."""
    mutated = bytearray(blob)
    action = data.draw(st.sampled_from(["flip", "truncate", "extend", "header"]))
    if action == "flip":
        i = data.draw(st.integers(0, len(mutated) - 1))
        mutated[i] ^= data.draw(st.integers(1, 255))
    elif action == "truncate":
        mutated = mutated[: data.draw(st.integers(0, len(mutated) - 1))]
    elif action == "extend":
        mutated += bytes(data.draw(st.binary(min_size=1, max_size=64)))
    else:
        i = data.draw(st.integers(0, header_size - 1))
        mutated[i] = data.draw(st.integers(0, 255))
    return bytes(mutated)
