"""The index file format: one file, a JSON header, then the raw arrays.

Layout::

    8 bytes   magic b"HSINDEX\\0"
    4 bytes   format version, little-endian uint32
    4 bytes   header length in bytes, little-endian uint32
    header    UTF-8 JSON (sorted keys), padded with spaces to a multiple of 64
    arrays    each C-ordered, little-endian, starting at a multiple of 64 bytes

The header records the metric, dimension, counts, the dtype of the vectors and
the offset, dtype and shape of every array, plus the total file size, so a
truncated or extended file is detected before any array is read.
"""

import json
import os
import struct

import numpy as np

MAGIC = b"HSINDEX\x00"
FORMAT_VERSION = 1
_ALIGNMENT = 64
_PREFIX = struct.Struct("<8sII")


def _aligned(offset):
    return (offset + _ALIGNMENT - 1) // _ALIGNMENT * _ALIGNMENT


def write_index(path, metadata, arrays):
    """Write ``arrays`` (a dict of name to ndarray) and ``metadata`` to ``path``."""
    specs = {}
    # The header size depends on the offsets, which depend on the header size:
    # reserve room first, then fill in the real offsets.
    layout = [(name, np.ascontiguousarray(array)) for name, array in arrays.items()]
    for name, array in layout:
        specs[name] = {"dtype": array.dtype.newbyteorder("<").str, "shape": list(array.shape), "offset": 0}
    header = dict(metadata, format_version=FORMAT_VERSION, arrays=specs, file_size=0)
    reserve = len(json.dumps(header, sort_keys=True).encode()) + 64 * (len(layout) + 1)
    data_start = _aligned(_PREFIX.size + reserve)

    offset = data_start
    for name, array in layout:
        specs[name]["offset"] = offset
        offset = _aligned(offset + array.nbytes)
    header["file_size"] = offset
    header_bytes = json.dumps(header, sort_keys=True).encode()
    header_bytes = header_bytes + b" " * (data_start - _PREFIX.size - len(header_bytes))

    path = os.fspath(path)
    with open(path, "wb") as handle:
        handle.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)))
        handle.write(header_bytes)
        for name, array in layout:
            handle.write(b"\x00" * (specs[name]["offset"] - handle.tell()))
            handle.write(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        handle.write(b"\x00" * (offset - handle.tell()))
    return path


def read_index(path, mmap=True):
    """Read a file written by :func:`write_index`; return (metadata, arrays).

    With ``mmap=True`` the arrays are copy-on-write memory maps of the file.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"index file {path} not found; check the path, or write one with VectorIndex.save") from None
    with open(path, "rb") as handle:
        prefix = handle.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise ValueError(f"{path} is not a hyperscale index: the file is only {size} bytes long")
        magic, version, header_length = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise ValueError(f"{path} is not a hyperscale index (its first bytes are {magic!r})")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{path} uses index format version {version}, but this hyperscale reads versions up to "
                f"{FORMAT_VERSION}; upgrade hyperscale to load it"
            )
        if version < 1:
            raise ValueError(f"{path} has an invalid index format version {version}")
        header_bytes = handle.read(header_length)
    if len(header_bytes) < header_length:
        raise ValueError(f"{path} is truncated: its header ends after {size} bytes")
    try:
        header = json.loads(header_bytes.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} has a corrupt header: {error}") from None
    expected = header.get("file_size")
    if expected != size:
        problem = "truncated" if isinstance(expected, int) and size < expected else "corrupt"
        raise ValueError(
            f"{path} is {problem}: it is {size} bytes long, but its header records {expected} bytes; "
            "save the index again"
        )

    arrays = {}
    for name, spec in header["arrays"].items():
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        if mmap:
            if int(np.prod(shape)) == 0:
                arrays[name] = np.zeros(shape, dtype=dtype)
            else:
                # Copy-on-write keeps the arrays writable, so the kernels compiled for
                # in-memory arrays serve them too; the file itself is never written.
                arrays[name] = np.memmap(path, dtype=dtype, mode="c", offset=spec["offset"], shape=shape)
        else:
            count = int(np.prod(shape))
            with open(path, "rb") as handle:
                handle.seek(spec["offset"])
                arrays[name] = np.fromfile(handle, dtype=dtype, count=count).reshape(shape)
    return header, arrays
