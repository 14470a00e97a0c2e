"""A small PNG codec for COCO panoptic segment-id maps: stdlib zlib + one compiled unfilter pass.

COCO panoptic PNGs are 8-bit RGB (or RGBA), non-interlaced; the reader
accepts exactly those (alpha ignored, as panopticapi's ``rgb2id``) and rejects
every other kind with an error naming the file, so the core package needs no
Pillow. Chunk CRCs are checked. The writer (filter 0, used by the tests and
examples) produces files any PNG reader opens.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from rewards._numba import kernel

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {2: ("RGB", 3), 6: ("RGBA", 4)}
_COLOR_NAMES = {0: "grayscale", 3: "palette", 4: "grayscale+alpha"}


@kernel
def _unfilter_ids(data, height, width, channels, ids):
    """Reverses the PNG row filters and writes R + 256 G + 65536 B per pixel.

    Parameters
    ----------
    data : (height * (1 + width * channels),) uint8
        The inflated IDAT stream: per row a filter byte then the row's bytes.
    height, width, channels : int
        Image size; channels is 3 (RGB) or 4 (RGBA).
    ids : (height * width,) int32, written
        Segment id of every pixel.

    Returns the first row whose filter byte is not 0..4, or -1.
    """
    stride = width * channels
    prev = np.zeros(stride, np.int32)
    cur = np.zeros(stride, np.int32)
    for y in range(height):
        base = y * (stride + 1)
        f = data[base]
        if f > 4:
            return y
        for i in range(stride):
            x = np.int32(data[base + 1 + i])
            a = cur[i - channels] if i >= channels else 0
            b = prev[i]
            if f == 1:
                x += a
            elif f == 2:
                x += b
            elif f == 3:
                x += (a + b) >> 1
            elif f == 4:
                c = prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa = abs(p - a)
                pb = abs(p - b)
                pc = abs(p - c)
                if pa <= pb and pa <= pc:
                    x += a
                elif pb <= pc:
                    x += b
                else:
                    x += c
            cur[i] = x & 0xFF
        row = y * width
        for xx in range(width):
            i = xx * channels
            ids[row + xx] = cur[i] + (cur[i + 1] << 8) + (cur[i + 2] << 16)
        prev, cur = cur, prev
    return -1


def read_ids(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int32 segment ids (R + 256 G + 256² B) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != _SIGNATURE:
        raise ValueError(f"{path}: not a PNG file")
    pos = 8
    header = None
    idat = []
    while pos + 8 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        body = blob[pos + 8 : pos + 8 + length]
        crc = blob[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"{path}: truncated PNG (chunk {kind!r})")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise ValueError(f"{path}: corrupt PNG (bad CRC in chunk {kind!r})")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError(f"{path}: truncated PNG (no {'IHDR' if header is None else 'IDAT'} chunk)")
    width, height, depth, color, _compression, _filter, interlace = header
    if color not in _COLOR_TYPES or depth != 8 or interlace:
        name = _COLOR_NAMES.get(color, _COLOR_TYPES.get(color, (f"color type {color}",))[0])
        raise ValueError(
            f"{path}: a {depth}-bit {name}{' interlaced' if interlace else ''} PNG; COCO panoptic PNGs "
            "are 8-bit RGB (or RGBA), non-interlaced"
        )
    channels = _COLOR_TYPES[color][1]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise ValueError(f"{path}: corrupt PNG data ({err})") from None
    if len(raw) != height * (1 + width * channels):
        raise ValueError(f"{path}: corrupt PNG ({len(raw)} bytes of pixel data for {width}x{height})")
    ids = np.empty(height * width, np.int32)
    bad_row = _unfilter_ids(np.frombuffer(raw, np.uint8), height, width, channels, ids)
    if bad_row >= 0:
        raise ValueError(f"{path}: corrupt PNG (unknown filter in row {bad_row})")
    return ids.reshape(height, width)


def write_rgb(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Writes an (H, W, 3) uint8 array as an 8-bit RGB PNG."""
    rgb = np.ascontiguousarray(rgb, np.uint8)
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    with open(path, "wb") as f:
        f.write(_SIGNATURE)
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)))
        f.write(chunk(b"IEND", b""))


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids -> (H, W, 3) uint8 (R + 256 G + 256² B = id)."""
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], -1).astype(np.uint8)
