"""Perceptual difference hash (dHash) of an image: near-identical frames get nearby hashes.

The image is reduced to 9x8 grey pixels; bit ``k`` (row-major over the 8x8 comparisons) is 1 when a
pixel is brighter than its left neighbour. The Hamming distance between two hashes counts the
differing bits: 0-5 is the same scene, above ~15 a different one.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

HASH_BITS = 64


def dhash64(gray: NDArray[np.uint8]) -> int:
    """The 64-bit dHash of a grey image (``HxW`` uint8, any size), as an unsigned int."""
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"dhash64 needs a non-empty 2-D grey image, got shape {gray.shape}")
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def image_dhash(data: bytes) -> int | None:
    """The dHash of an encoded image (JPEG or PNG bytes), or None when it does not decode.

    JPEGs are decoded at a quarter of their size (the DCT does the scaling): the hash only looks
    at 9x8 pixels anyway.
    """
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if gray is None or gray.size == 0:
        return None
    return dhash64(np.asarray(gray, dtype=np.uint8))


def to_signed64(value: int) -> int:
    """An unsigned 64-bit hash as the signed int64 a BIGINT column holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes (signed or unsigned forms both work)."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()
