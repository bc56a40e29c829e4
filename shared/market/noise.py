"""Seeded, integer-only noise: the raw material of the moving market.

Everything is a pure function of its arguments, computed in O(1) for any slot
(no walk from genesis) and identical on every machine: hashing replaces a
random generator and integer smoothstep interpolation replaces sinusoids, so no
platform's libm can make two replicas disagree about a price.
"""

from __future__ import annotations

import hashlib

__all__ = ["hash_int", "smooth_noise", "smoothstep", "uniform"]


def hash_int(*parts: object) -> int:
    """A 64-bit integer derived from ``parts`` (their ``str`` forms), stable forever."""
    data = "\x1f".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def uniform(amplitude: int, *parts: object) -> int:
    """An integer in ``[-amplitude, amplitude]`` derived from ``parts``."""
    if amplitude <= 0:
        return 0
    return hash_int(*parts) % (2 * amplitude + 1) - amplitude


def smooth_noise(position: int, spacing: int, amplitude: int, *parts: object) -> int:
    """Value noise: seeded knots every ``spacing`` steps joined by smoothstep curves.

    The result stays within ``[-amplitude, amplitude]``, is continuous in
    ``position`` and has zero slope at each knot, so it looks like a slow wave.
    Knots are shifted by a seeded phase so octaves with related spacings do not
    line up.
    """
    if spacing <= 0:
        raise ValueError("noise spacing must be positive")
    shifted = position + hash_int("phase", *parts) % spacing
    knot, offset = divmod(shifted, spacing)
    start = uniform(amplitude, "knot", knot, *parts)
    end = uniform(amplitude, "knot", knot + 1, *parts)
    return start + smoothstep(end - start, offset, spacing)


def smoothstep(amount: int, position: int, span: int) -> int:
    """``amount * smoothstep(position / span)``, rounded down: 0 at 0, ``amount`` at ``span``, flat at both.

    smoothstep(t) = 3t^2 - 2t^3, kept as one exact fraction; ``position`` must lie in ``[0, span]``.
    """
    weight = 3 * position * position * span - 2 * position**3
    return amount * weight // span**3
