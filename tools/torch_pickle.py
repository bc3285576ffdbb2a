"""Read tensors from a PyTorch ``.pth`` state dict without importing torch.

Handles the zip format (torch >= 1.6: ``<dir>/data.pkl`` + ``<dir>/data/<key>``)
and the legacy format (magic number, protocol version and sys_info pickles, the
object pickle, the storage key list, then each storage as an int64 element count
followed by its raw bytes).

A .pth is a pickle, and unpickling can call any importable function. The
unpickler below resolves only an allow-list of globals (tensor rebuild helpers,
typed storage classes, OrderedDict) to local stand-ins and refuses everything
else, so a malicious file fails instead of running code.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch typed storage class -> numpy dtype (little endian, as torch writes it).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",  # numpy has no bfloat16; widened in _Storage.array
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes may arrive after the object pickle (legacy format)."""

    def __init__(self, stype: _StorageType, numel: int):
        self.stype, self.numel, self.raw = stype, numel, None

    def array(self) -> np.ndarray:
        if self.raw is None:
            raise pickle.UnpicklingError("storage data missing from the file")
        a = np.frombuffer(self.raw, dtype=self.stype.dtype, count=self.numel)
        if self.stype.name == "BFloat16Storage":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a


class _View:
    """A legacy storage view: ``numel`` elements of ``base`` from ``offset``."""

    def __init__(self, base: _Storage, offset: int, numel: int):
        self.base, self.offset, self.numel = base, offset, numel

    def array(self) -> np.ndarray:
        return self.base.array()[self.offset : self.offset + self.numel]


class _Tensor:
    """Deferred tensor: the storage bytes may not have been read yet."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array()
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        # as_strided reads raw memory: bounds-check so a corrupt file cannot
        # make us read past the storage.
        if any(n <= 0 for n in self.size):
            return np.zeros(self.size, flat.dtype)
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= flat.size:
            raise pickle.UnpicklingError("tensor view exceeds its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=[s * flat.itemsize for s in self.stride],
            writeable=False,
        )
        return np.array(view)


def _rebuild_tensor_v2(storage, offset, size, stride, *_ignored):
    # _ignored: requires_grad, backward_hooks and (newer torch) metadata.
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, persistent_load=None):
        super().__init__(file)
        self._persistent = persistent_load

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: not a tensor-state "
                "global (torch_pickle only reads plain state dicts)"
            ) from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        return self._persistent(pid)


def _storage_id(pid) -> tuple:
    """Common part of both formats' persistent ids: ('storage', type, key, ...)."""
    if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
    if not isinstance(pid[1], _StorageType):
        raise pickle.UnpicklingError("persistent id without a typed storage class")
    return pid[1:]


def _load_zip(zf: zipfile.ZipFile):
    pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise pickle.UnpicklingError("zip archive without a single <dir>/data.pkl")
    prefix = pkl[0][: -len("data.pkl")]
    order = prefix + "byteorder"
    if order in zf.namelist() and zf.read(order).strip() != b"little":
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")
    storages: dict = {}

    def persistent_load(pid):
        stype, key, _location, numel = _storage_id(pid)
        if key not in storages:
            s = storages[key] = _Storage(stype, int(numel))
            s.raw = zf.read(f"{prefix}data/{key}")
        return storages[key]

    return _Unpickler(io.BytesIO(zf.read(pkl[0])), persistent_load).load()


def _load_legacy(f):
    if _Unpickler(f).load() != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a torch file (bad magic number)")
    _Unpickler(f).load()  # protocol version
    sys_info = _Unpickler(f).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian checkpoints are not supported")
    storages: dict = {}

    def persistent_load(pid):
        stype, root_key, _location, numel, view = _storage_id(pid)
        root = storages.setdefault(root_key, _Storage(stype, int(numel)))
        if view is None:
            return root
        _view_key, offset, view_numel = view
        return _View(root, int(offset), int(view_numel))

    result = _Unpickler(f, persistent_load).load()
    for key in _Unpickler(f).load():
        s = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * s.stype.dtype.itemsize
        s.raw = f.read(nbytes)
        if count != s.numel or len(s.raw) != nbytes:
            raise pickle.UnpicklingError(f"truncated storage {key}")
    return result


def _flatten(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", out)
    elif isinstance(obj, _Tensor):
        a = obj.materialize()
        out[prefix[:-1]] = a.astype(np.float32) if a.dtype.kind == "f" else a


def load_state_dict(source) -> collections.OrderedDict:
    """name -> numpy array for every tensor in a .pth (path, bytes or binary file).

    Floating tensors come back as float32; integer ones (e.g. BatchNorm's
    num_batches_tracked) keep their dtype. Nested dicts get dotted names.
    """
    if isinstance(source, (str, Path)):
        source = Path(source).read_bytes()
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    if zipfile.is_zipfile(f):
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            obj = _load_zip(zf)
    else:
        f.seek(0)
        obj = _load_legacy(f)
    out: collections.OrderedDict = collections.OrderedDict()
    _flatten(obj, "", out)
    return out
