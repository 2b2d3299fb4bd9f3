"""The decoded-data cache: each reader's output written once, memory-mapped on every later load.

Decoding is the slow part of a start (CelebA's 202,599 JPEGs take minutes on 2 cores), and every
entry point (training, precompute, evaluate, the app) loads through `explorer.datasets.load_dataset`,
so it keeps what a reader returned in a folder of plain files:

    <cache>/<identity>-<key>/header.json     format, request, names, counts, skipped files (no pickle)
                             images.npy      uint8 (N, C, S, S), memory-mapped on load
                             labels.npy / attributes.npy / factors.npy   when the dataset has them

`identity` hashes the request (spec, image size, channels, split, max_images); `key` adds what the
output is made from: the reader's version, the decoder's settings and every input file's name,
size and mtime (a listing, no decoding). A changed, added or removed file gives a new key, so the
entry is rebuilt, and the entry it replaces (same identity) is deleted.

Writing is atomic: an entry is assembled in a hidden temporary folder and renamed into place, so a
reader sees a whole entry or none; a file lock makes concurrent loaders (DDP ranks, the app and a
precompute) wait for one build instead of each decoding. Image-file readers decode straight into
the memory-mapped images.npy (disk space reserved first), so a set larger than RAM can be built.
A cache that cannot be written (read-only, full disk) only costs speed: the data is decoded in
memory and a warning says why.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from explorer.datasets import decode
from explorer.datasets.common import ImageDataset, Request, user_cache_dir

FORMAT = 1  # bump when the layout of an entry changes
ENV = "LATENT_LAB_DATA_CACHE"  # a folder, or "off"
_ARRAYS = {"labels": np.int64, "attributes": np.uint8, "factors": np.float32}
_NAMES = ("class_names", "attribute_names", "factor_names")


class CacheWriteError(OSError):
    """The cache folder could not take an entry; the load goes on without the cache."""


def resolve_cache_dir(cache: str | os.PathLike | None) -> Path | None:
    """The folder for `load_dataset(cache=...)`: "auto" -> $LATENT_LAB_DATA_CACHE or <user cache>/decoded;
    None or "off" -> no cache; anything else is the folder."""
    if cache is None or str(cache) == "off":
        return None
    if str(cache) != "auto":
        return Path(cache).expanduser()
    configured = os.environ.get(ENV, "")
    if configured == "off":
        return None
    return Path(configured).expanduser() if configured else user_cache_dir() / "decoded"


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def entry_name(reader, request: Request) -> tuple[str, str]:
    """(identity, key) of a request; the key lists the reader's input files with their sizes and mtimes."""
    files, extra = reader.inputs(request)
    asked = {"spec": request.text, "image_size": request.image_size, "channels": request.channels,
             "max_images": request.max_images, "split": request.split, "format": FORMAT}
    identity = _digest(asked)
    made_of = {"reader": f"{reader.__name__}:{reader.VERSION}", "max_image_pixels": decode.MAX_IMAGE_PIXELS,
               "torch": torch.__version__.split("+")[0], "extra": extra, "files": files}
    return identity, _digest([identity, made_of])


def load_or_decode(reader, request: Request, cache_dir: Path, progress: bool = False) -> ImageDataset:
    """The request's dataset from `cache_dir`, decoding and caching it first when needed."""
    identity, key = entry_name(reader, request)
    entry = cache_dir / f"{identity}-{key}"
    dataset = open_entry(entry, key)
    if dataset is not None:
        return dataset
    lock = contextlib.ExitStack()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock.enter_context(_locked(cache_dir / f".{identity}-{key}.lock"))
    except OSError as error:
        return _without_cache(reader, request, progress, cache_dir, error)
    with lock:
        dataset = open_entry(entry, key)  # another process may have built it while we waited
        if dataset is None:
            _remove(entry)  # an unreadable entry of this key, if any
            dataset = _build(reader, request, cache_dir, entry, identity, key, progress)
        return dataset


def _without_cache(reader, request: Request, progress: bool, cache_dir: Path, error: OSError) -> ImageDataset:
    warnings.warn(f"decoded-data cache {cache_dir} not usable ({error}); decoding without it", RuntimeWarning, stacklevel=3)
    return reader.read(request, progress=progress)


def _build(reader, request: Request, cache_dir: Path, entry: Path, identity: str, key: str, progress: bool) -> ImageDataset:
    _remove_abandoned(cache_dir)
    try:
        tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".tmp-{identity}-{key}-{os.getpid()}-"))
    except OSError as error:
        return _without_cache(reader, request, progress, cache_dir, error)
    writer = _EntryWriter(tmp)
    start = time.perf_counter()
    try:
        try:
            dataset = reader.read(request, progress=progress, allocate=writer.allocate)
        except CacheWriteError as error:  # no room for images.npy: decode in memory instead
            _remove(tmp)
            return _without_cache(reader, request, progress, cache_dir, error)
        try:
            writer.commit(dataset, request, key, identity, time.perf_counter() - start)
            os.rename(tmp, entry)
        except OSError as error:
            _remove(tmp)
            warnings.warn(f"decoded-data cache {cache_dir}: could not write the entry ({error}); using the data uncached",
                          RuntimeWarning, stacklevel=3)
            return dataset
    except BaseException:
        _remove(tmp)
        raise
    for stale in cache_dir.glob(f"{identity}-*"):  # the same request made of older files
        if stale != entry:
            _remove(stale)
            (cache_dir / f".{stale.name}.lock").unlink(missing_ok=True)
    return open_entry(entry, key) or dataset


class _EntryWriter:
    """Writes one entry's files into its temporary folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.mapped: np.memmap | None = None  # images.npy, when a reader decoded into it

    def allocate(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A uint8 tensor of `shape` backed by images.npy, its disk space reserved (CacheWriteError if none)."""
        path = self.folder / "images.npy"
        nbytes = int(np.prod(shape))
        try:
            free = shutil.disk_usage(self.folder).free
            if nbytes > free:
                raise OSError(errno.ENOSPC, f"{nbytes / 1e9:.2f} GB of images, {free / 1e9:.2f} GB free")
            self.mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
            if nbytes and hasattr(os, "posix_fallocate"):
                # A memory-mapped write that finds the disk full kills the process (SIGBUS): reserve
                # the blocks now, where a full disk is an ordinary OSError.
                with open(path, "r+b") as file:
                    os.posix_fallocate(file.fileno(), 0, os.path.getsize(path))
        except OSError as error:
            self.mapped = None
            path.unlink(missing_ok=True)
            raise CacheWriteError(error.errno, f"no room for the decoded images: {error}") from error
        return torch.from_numpy(self.mapped)

    def commit(self, dataset: ImageDataset, request: Request, key: str, identity: str, seconds: float) -> None:
        images_path = self.folder / "images.npy"
        if self.mapped is not None and dataset.images.data_ptr() == torch.from_numpy(self.mapped).data_ptr():
            # The reader decoded into images.npy; dataset.images is its first len(dataset) rows,
            # which is all anyone reads of the mapping once the file is cut after them.
            self.mapped.flush()
            _trim_npy(images_path, len(dataset), self.mapped)
            self.mapped = None
        else:
            self.mapped = None
            images_path.unlink(missing_ok=True)
            np.save(images_path, dataset.images.contiguous().numpy(), allow_pickle=False)
        arrays = []
        for name, dtype in _ARRAYS.items():
            values = getattr(dataset, name)
            if values is not None:
                np.save(self.folder / f"{name}.npy", values.numpy().astype(dtype, copy=False), allow_pickle=False)
                arrays.append(name)
        header = {
            "format": FORMAT, "key": key, "identity": identity, "spec": request.text,
            "request": {"image_size": request.image_size, "channels": request.channels,
                        "max_images": request.max_images, "split": request.split},
            "count": len(dataset),
            "arrays": arrays, "skipped": dataset.skipped, "decode_seconds": round(seconds, 3), "created": time.time(),
            **{name: getattr(dataset, name) for name in _NAMES},
        }
        (self.folder / "header.json").write_text(json.dumps(header, indent=1))
        for path in self.folder.iterdir():
            _fsync(path)
        _fsync(self.folder)


def _trim_npy(path: Path, rows: int, mapped: np.memmap) -> None:
    """Rewrite an .npy header to `rows` rows (same header length) and cut the file after them."""
    shape = (rows, *mapped.shape[1:])
    row_bytes = int(np.prod(mapped.shape[1:]))
    with open(path, "r+b") as file:
        version = np.lib.format.read_magic(file)
        prefix = file.tell() + (2 if version == (1, 0) else 4)  # magic + version, then the header length
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(file)
        offset = file.tell()
        text = repr({"descr": "|u1", "fortran_order": False, "shape": shape})
        padding = offset - prefix - len(text) - 1
        file.seek(prefix)
        file.write((text + " " * padding + "\n").encode("latin1"))
        file.truncate(offset + rows * row_bytes)


def open_entry(entry: Path, key: str) -> ImageDataset | None:
    """The dataset of a complete, consistent entry (images memory-mapped, copy-on-write), else None."""
    try:
        header = json.loads((entry / "header.json").read_text())
        if header.get("format") != FORMAT or header.get("key") != key:
            return None
        images = np.load(entry / "images.npy", mmap_mode="c", allow_pickle=False)
        count = int(header["count"])
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != count:
            return None
        arrays = {name: torch.from_numpy(np.load(entry / f"{name}.npy", allow_pickle=False)) for name in header["arrays"]}
        return ImageDataset(
            images=torch.from_numpy(images), spec=header["spec"], skipped=dict(header["skipped"]),
            images_file=entry / "images.npy", **arrays, **{name: header[name] for name in _NAMES},
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):  # a damaged entry: rebuilt by the caller
        return None


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent builders each decode, the rename keeps one
        yield
        return
    with open(path, "a") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _remove_abandoned(cache_dir: Path) -> None:
    """Temporary folders of builders that died (killed mid-decode): they can hold gigabytes."""
    for tmp in cache_dir.glob(".tmp-*"):
        try:
            pid = int(tmp.name.split("-")[3])
            os.kill(pid, 0)
        except ProcessLookupError:
            _remove(tmp)
        except (ValueError, IndexError, PermissionError):
            continue
