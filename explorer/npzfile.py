"""Analysis files: numpy arrays plus a JSON header in one .npz, read back without pickle.

Directions, probes and feature maps are cached beside a checkpoint in this form. The header is
stored as a unicode string array and everything is read with allow_pickle=False, so a crafted
file can hold wrong numbers (each reader validates them) but can never run code.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping

import numpy as np

from explorer.fsio import atomic_write_bytes


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], header: Mapping) -> None:
    """Atomically write arrays plus a JSON header."""
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header)), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, header) from a `save_npz` file."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != "header"}
        return arrays, json.loads(str(data["header"]))


def npz_header(path: str | os.PathLike) -> dict:
    """Only the JSON header of a `save_npz` file (np.load is lazy: the arrays are not read)."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["header"]))
