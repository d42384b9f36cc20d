"""A safe reader for PyTorch ``.pth`` state dicts that needs no torch.

Supports both of PyTorch's serialisation formats:
  * the *legacy* format (PyTorch < 1.6): a stream of pickles (magic number,
    protocol version, system info, the object, the storage keys) followed by
    the raw storages, each prefixed by its element count as int64;
  * the *zip* format (PyTorch >= 1.6): ``<prefix>/data.pkl`` and one raw file
    per storage under ``<prefix>/data/``.

Storages saved on a CUDA device are read as host arrays (the location tag is
ignored). The unpickler refuses every global except plain containers, the
tensor-rebuild functions and the typed-storage classes, so a malicious file
cannot run code: anything else raises ``UnsafeCheckpointError``.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

__all__ = ["load_state_dict", "UnsafeCheckpointError", "CheckpointFormatError"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64,
    "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_DTYPE_NAMES = {  # torch.<dtype> globals used by the untyped-storage path
    "float32": np.float32, "float": np.float32, "float64": np.float64,
    "double": np.float64, "float16": np.float16, "half": np.float16,
    "int64": np.int64, "long": np.int64, "int32": np.int32, "int": np.int32,
    "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


class UnsafeCheckpointError(ValueError):
  """The pickle asks for something other than tensors and plain containers."""


class CheckpointFormatError(ValueError):
  """The file is not a PyTorch checkpoint this reader understands."""


class _StorageType:
  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


class _Storage:
  """A lazily filled flat array standing in for a torch storage."""

  def __init__(self, dtype, numel=None):
    self.dtype = np.dtype(dtype)
    self.numel = numel
    self.array: np.ndarray | None = None


def _rebuild_tensor(storage, offset, size, stride, *unused):
  return ("tensor", storage, int(offset), tuple(size), tuple(stride))


def _ordered_dict(*args, **kwargs):
  return collections.OrderedDict(*args, **kwargs)


class _SafeUnpickler(pickle.Unpickler):

  def __init__(self, file, storages: dict[str, _Storage]):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module: str, name: str) -> Any:
    if module == "collections" and name == "OrderedDict":
      return _ordered_dict
    if module == "torch._utils" and name in ("_rebuild_tensor_v2",
                                             "_rebuild_tensor"):
      return _rebuild_tensor
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(_STORAGE_DTYPES[name])
    if module == "torch" and name in _DTYPE_NAMES:
      return _StorageType(_DTYPE_NAMES[name])
    if module in ("torch", "torch.storage") and name == "UntypedStorage":
      return _StorageType(np.uint8)
    raise UnsafeCheckpointError(
        f"refusing to load global {module}.{name}: only tensors and plain "
        "containers are allowed in a weights file")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise CheckpointFormatError(f"unsupported persistent id {pid!r}")
    _, stype, key, _location, numel = pid[:5]
    if not isinstance(stype, _StorageType):
      raise CheckpointFormatError(f"unsupported storage type {stype!r}")
    view = pid[5] if len(pid) > 5 else None
    key = str(key)
    if key not in self.storages:
      self.storages[key] = _Storage(stype.dtype, numel)
    base = self.storages[key]
    if view is not None:  # legacy views: (view_key, offset, size)
      _, voff, vsize = view
      return ("view", base, int(voff), int(vsize))
    return base


def _materialise(obj: Any) -> Any:
  """Replaces rebuilt-tensor placeholders by NumPy arrays, recursively."""
  if isinstance(obj, tuple) and obj and obj[0] == "tensor":
    _, storage, offset, size, stride = obj
    if isinstance(storage, tuple) and storage[0] == "view":
      _, base, voff, vsize = storage
      flat = base.array[voff:voff + vsize]
    else:
      flat = storage.array
    if flat is None:
      raise CheckpointFormatError("a tensor refers to a storage with no data")
    itemsize = flat.dtype.itemsize
    need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if size and min(size) > 0 and need > flat.size:
      raise CheckpointFormatError("a tensor runs past the end of its storage")
    arr = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=[s * itemsize for s in stride])
    return np.array(arr)  # own, contiguous copy
  if isinstance(obj, dict):
    out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
    for k, v in obj.items():
      out[k] = _materialise(v)
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def _load_zip(zf: zipfile.ZipFile) -> Any:
  names = zf.namelist()
  pkl = [n for n in names if n.endswith("data.pkl")]
  if not pkl:
    raise CheckpointFormatError("zip file has no data.pkl: not a torch file")
  prefix = pkl[0][:-len("data.pkl")]
  storages: dict[str, _Storage] = {}
  obj = _SafeUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
  for key, st in storages.items():
    raw = zf.read(f"{prefix}data/{key}")
    st.array = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<")).astype(
        st.dtype)
  return obj


def _load_legacy(f: BinaryIO) -> Any:
  try:
    magic = pickle.load(f)
  except Exception as e:  # noqa: BLE001 - any failure means "not torch"
    raise CheckpointFormatError(f"not a PyTorch checkpoint ({e})") from None
  if magic != _LEGACY_MAGIC:
    raise CheckpointFormatError("not a PyTorch checkpoint (bad magic number)")
  protocol = pickle.load(f)
  if protocol != 1001:
    raise CheckpointFormatError(f"unsupported legacy protocol {protocol}")
  sys_info = pickle.load(f)
  if not sys_info.get("little_endian", True):
    raise CheckpointFormatError("big-endian checkpoints are not supported")
  storages: dict[str, _Storage] = {}
  obj = _SafeUnpickler(f, storages).load()
  keys = pickle.load(f)
  for key in keys:
    st = storages[str(key)]
    header = f.read(8)
    if len(header) != 8:
      raise CheckpointFormatError("file is truncated (storage header)")
    (numel,) = struct.unpack("<q", header)
    nbytes = numel * st.dtype.itemsize
    raw = f.read(nbytes)
    if len(raw) != nbytes:
      raise CheckpointFormatError("file is truncated (storage data)")
    st.array = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<")).astype(
        st.dtype)
  return obj


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a PyTorch ``.pth`` file into a dict of NumPy arrays, without torch.

  Args:
    path: a ``.pth``/``.pt`` file in PyTorch's legacy or zip format, holding a
      state dict (or a dict with a ``state_dict`` entry).

  Returns:
    An ordered dict ``name -> np.ndarray`` (PyTorch layouts, e.g. OIHW).

  Raises:
    FileNotFoundError: the path does not exist.
    UnsafeCheckpointError: the pickle references anything but tensors and
      plain containers.
    CheckpointFormatError: the file is not a readable PyTorch checkpoint.
  """
  with open(path, "rb") as f:
    if zipfile.is_zipfile(f):
      f.seek(0)
      with zipfile.ZipFile(f) as zf:
        obj = _load_zip(zf)
    else:
      f.seek(0)
      obj = _load_legacy(f)
  obj = _materialise(obj)
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(
      obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict) or not all(
      isinstance(v, np.ndarray) for v in obj.values()):
    raise CheckpointFormatError("the file does not hold a state dict of "
                                "tensors")
  return obj
