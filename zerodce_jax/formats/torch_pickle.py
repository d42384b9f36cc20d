"""A safe reader for PyTorch ``.pth`` state dicts that needs no torch.

Supports both of PyTorch's serialisation formats:
  * the *legacy* format (PyTorch < 1.6): a stream of five pickles (magic
    number, protocol version, system info, the object, the storage keys)
    followed by the raw storages, each prefixed by its element count as int64;
  * the *zip* format (PyTorch >= 1.6): ``<prefix>/data.pkl`` and one raw file
    per storage under ``<prefix>/data/``.

Every pickle goes through ``safe_pickle`` (a pickle machine that runs no
code). The header pickles of the legacy format may hold only ints, strings,
booleans and containers of them; the state dict may also name the
tensor-rebuild functions, ``collections.OrderedDict`` and the storage
classes, and those are stand-ins that check their arguments, never PyTorch's
own. Storages saved on a CUDA device are read as host arrays.

Resource limits: the file's size is capped; a storage must hold at least as
many bytes as it declares (checked before anything is read), a tensor may
not hold more elements than its storage nor reach past it, and a zip member
may not declare more bytes than its storage needs. Whatever goes wrong, the
error is a ``CheckpointFormatError`` (``UnsafeCheckpointError`` for what
looks like an attack) whose message names the file.
"""

from __future__ import annotations

import collections
import io
import math
import os
import struct
import zipfile
from typing import Any

import numpy as np

from zerodce_jax.formats import safe_pickle

__all__ = ["load_state_dict", "loads_state_dict", "UnsafeCheckpointError",
           "CheckpointFormatError", "MAX_FILE_BYTES"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_FILE_BYTES = 2**31  # 2 GiB: far above any DCE-Net (0.3 MB)
_MAX_NDIM = 8

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


class CheckpointFormatError(ValueError):
  """The file is not a PyTorch checkpoint this reader accepts."""


class UnsafeCheckpointError(CheckpointFormatError):
  """The pickle asks for something other than tensors and plain containers."""


class _Bad(safe_pickle.PickleError):
  """Raised by the stand-ins below; becomes a ``CheckpointFormatError``."""


class _StorageType:
  """Stands in for ``torch.FloatStorage`` & co. and ``torch.float32`` & co."""

  def __init__(self, dtype):
    self.dtype = np.dtype(dtype)


class _Storage:
  """A flat array standing in for a torch storage, filled after unpickling."""

  def __init__(self, key: str, dtype: np.dtype, numel: int):
    self.key, self.dtype, self.numel = key, dtype, numel
    self.array: np.ndarray | None = None


class _View:
  """A legacy storage view: ``numel`` elements of ``base`` from ``offset``."""

  def __init__(self, base: _Storage, offset: int, numel: int):
    self.base, self.offset, self.numel = base, offset, numel


class _TensorRef:
  """A tensor to materialise once the storages are read."""

  def __init__(self, storage, offset: int, size: tuple[int, ...],
               stride: tuple[int, ...]):
    self.storage, self.offset, self.size, self.stride = (storage, offset, size,
                                                         stride)


def _int(v: Any, what: str, *, lo: int = 0, hi: int = 2**62) -> int:
  if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
    raise _Bad(f"{what} must be an integer in [{lo}, {hi}], got "
               f"{type(v).__name__}")
  return v


def _ints(v: Any, what: str) -> tuple[int, ...]:
  if not isinstance(v, (tuple, list)) or len(v) > _MAX_NDIM:
    raise _Bad(f"{what} must be a tuple of at most {_MAX_NDIM} integers")
  return tuple(_int(x, what) for x in v)


def _rebuild_tensor(storage, offset, size, stride, *rest):
  """``torch._utils._rebuild_tensor(_v2)``, checked: storage, offset, size,
  stride, then optionally requires_grad, backward_hooks, metadata."""
  if not isinstance(storage, (_Storage, _View)):
    raise _Bad(f"a tensor's storage is a {type(storage).__name__}, not a "
               "storage")
  size_, stride_ = _ints(size, "tensor size"), _ints(stride, "tensor stride")
  if len(size_) != len(stride_):
    raise _Bad("tensor size and stride differ in length")
  if len(rest) > 3:
    raise _Bad("too many arguments to _rebuild_tensor_v2")
  if rest and not isinstance(rest[0], bool):
    raise _Bad("requires_grad must be a boolean")
  for extra in rest[1:]:
    if extra is not None and not (isinstance(extra, dict) and not extra):
      raise _Bad("tensor hooks/metadata must be empty")
  return _TensorRef(storage, _int(offset, "tensor offset"), size_, stride_)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *rest):
  """``torch._utils._rebuild_parameter``: a Parameter is its tensor here."""
  if not isinstance(data, _TensorRef) or rest:
    raise _Bad("a Parameter must wrap one tensor")
  return data


def _ordered_dict(*args):
  """``collections.OrderedDict`` with no items or a list of pairs."""
  if not args:
    return collections.OrderedDict()
  if len(args) == 1 and isinstance(args[0], list) and all(
      isinstance(p, (tuple, list)) and len(p) == 2 for p in args[0]):
    try:
      return collections.OrderedDict(args[0])
    except TypeError:
      raise _Bad("OrderedDict with unhashable keys") from None
  raise _Bad("OrderedDict may only be built from a list of pairs")


_A = safe_pickle.Allowed
_STATE_DICT_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _A("collections.OrderedDict",
                                       _ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): _A(
        "torch._utils._rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _A("torch._utils._rebuild_tensor",
                                            _rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _A(
        "torch._utils._rebuild_parameter", _rebuild_parameter),
    **{("torch", n): _StorageType(d) for n, d in _STORAGE_DTYPES.items()},
    **{("torch", n): _StorageType(d) for n, d in _DTYPE_NAMES.items()},
    ("torch", "UntypedStorage"): _StorageType(np.uint8),
    ("torch.storage", "UntypedStorage"): _StorageType(np.uint8),
}


def _storage_loader(storages: dict[str, _Storage]):
  """A ``persistent_load`` for ``('storage', type, key, location, numel
  [, view])`` ids that records each storage in ``storages``."""

  def load(pid: Any):
    if not (isinstance(pid, tuple) and len(pid) in (5, 6)
            and pid[0] == "storage"):
      raise _Bad("unsupported persistent id (not a storage)")
    _, stype, key, location, numel = pid[:5]
    if not isinstance(stype, _StorageType):
      raise _Bad(f"unsupported storage type {type(stype).__name__}")
    if not isinstance(key, (str, int)) or isinstance(key, bool) or not (
        isinstance(location, str)):
      raise _Bad("storage key/location of the wrong type")
    key = str(key)
    numel = _int(numel, "storage size", hi=MAX_FILE_BYTES)
    if key not in storages:
      storages[key] = _Storage(key, stype.dtype, numel)
    base = storages[key]
    if base.dtype != stype.dtype:
      raise _Bad(f"storage {key} is declared with two dtypes")
    view = pid[5] if len(pid) == 6 else None
    if view is None:
      return base
    if not (isinstance(view, tuple) and len(view) == 3):
      raise _Bad("bad storage view")
    voff = _int(view[1], "view offset")
    vsize = _int(view[2], "view size")
    return _View(base, voff, vsize)

  return load


def _fill(storage: _Storage, raw: bytes, numel: int) -> None:
  """Sets the storage's array from ``raw`` (``numel`` little-endian items)."""
  storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"),
                                count=numel).astype(storage.dtype)


def _materialise(obj: Any, seen: dict[int, Any] | None = None,
                 active: set[int] | None = None) -> Any:
  """Replaces tensor references by NumPy arrays in a tree of containers.

  Shared sub-trees are materialised once (a pickle can reference one list
  from many places: no exponential blow-up); cycles are an error.
  """
  seen = {} if seen is None else seen
  active = set() if active is None else active
  if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
    return obj
  oid = id(obj)
  if oid in seen:
    return seen[oid]
  if oid in active:
    raise _Bad("the pickle's containers refer to themselves")
  active.add(oid)
  if isinstance(obj, _TensorRef):
    out = _tensor(obj)
  elif isinstance(obj, dict):
    out = collections.OrderedDict() if isinstance(
        obj, collections.OrderedDict) else {}
    for k, v in obj.items():
      out[k] = _materialise(v, seen, active)
  elif isinstance(obj, (list, tuple)):
    out = type(obj)(_materialise(v, seen, active) for v in obj)
  else:  # storages or type markers outside a tensor: not a state dict
    raise _Bad(f"a {type(obj).__name__.strip('_')} outside a tensor")
  active.discard(oid)
  seen[oid] = out
  return out


def _tensor(t: _TensorRef) -> np.ndarray:
  if isinstance(t.storage, _View):
    base, voff, vsize = t.storage.base, t.storage.offset, t.storage.numel
    if base.array is None or voff + vsize > base.array.size:
      raise _Bad(f"a view runs past the end of storage {base.key}")
    flat = base.array[voff:voff + vsize]
  else:
    if t.storage.array is None:
      raise _Bad(f"storage {t.storage.key} holds no data")
    flat = t.storage.array
  n = math.prod(t.size)
  if n == 0:
    return np.zeros(t.size, flat.dtype)
  if n > flat.size:
    raise _Bad(f"a tensor of {n} elements on a storage of {flat.size}")
  last = t.offset + sum((d - 1) * s for d, s in zip(t.size, t.stride))
  if last >= flat.size:
    raise _Bad("a tensor runs past the end of its storage")
  view = np.lib.stride_tricks.as_strided(
      flat[t.offset:], shape=t.size,
      strides=[s * flat.itemsize for s in t.stride], writeable=False)
  return np.array(view)  # own, contiguous copy


def _load_zip(data: bytes) -> Any:
  try:
    zf = zipfile.ZipFile(io.BytesIO(data))
  except (zipfile.BadZipFile, ValueError) as e:
    raise _Bad(f"damaged zip archive ({e})") from None
  with zf:
    infos = {i.filename: i for i in zf.infolist()}
    pkl = [n for n in infos if n.endswith("data.pkl")]
    if len(pkl) != 1:
      raise _Bad("not a PyTorch zip checkpoint (expected exactly one "
                 f"data.pkl, found {len(pkl)})")
    prefix = pkl[0][:-len("data.pkl")]
    if infos[pkl[0]].file_size > safe_pickle.MAX_PICKLE_BYTES:
      raise _Bad("data.pkl declares more than "
                 f"{safe_pickle.MAX_PICKLE_BYTES} bytes")
    order = infos.get(f"{prefix}byteorder")
    if order is not None and _read_member(zf, order, 16) != b"little":
      raise _Bad("big-endian checkpoints are not supported")
    storages: dict[str, _Storage] = {}
    obj, _ = safe_pickle.loads(
        _read_member(zf, infos[pkl[0]], safe_pickle.MAX_PICKLE_BYTES),
        allowed=_STATE_DICT_GLOBALS,
        persistent_load=_storage_loader(storages), where=" in data.pkl")
    for key, st in storages.items():
      info = infos.get(f"{prefix}data/{key}")
      if info is None:
        raise _Bad(f"storage {key} named in data.pkl is not in the archive")
      need = st.numel * st.dtype.itemsize
      if info.file_size != need:
        raise _Bad(f"storage {key} declares {info.file_size} bytes, its "
                   f"tensors need {need}")
      _fill(st, _read_member(zf, info, need), st.numel)
  return obj


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                 limit: int) -> bytes:
  """A member's bytes, never more than ``limit`` (a zip bomb stops there)."""
  with zf.open(info) as f:
    raw = f.read(limit + 1)
  if len(raw) > limit:
    raise _Bad(f"{info.filename} is larger than {limit} bytes")
  return raw


def _load_legacy(data: bytes) -> Any:
  def header(pos: int, what: str) -> tuple[Any, int]:
    try:
      return safe_pickle.loads(data, pos=pos, where=f" in the {what}")
    except safe_pickle.ForbiddenError:
      raise
    except safe_pickle.PickleError as e:
      if pos == 0:  # the very first pickle: not a torch file at all
        raise _Bad(f"not a PyTorch checkpoint ({e})") from None
      raise

  magic, pos = header(0, "magic number (pickle 1 of 5)")
  if magic != _LEGACY_MAGIC or isinstance(magic, bool):
    raise _Bad("not a PyTorch checkpoint (bad magic number)")
  protocol, pos = header(pos, "protocol version (pickle 2 of 5)")
  if protocol != 1001 or isinstance(protocol, bool):
    raise _Bad(f"unsupported legacy protocol {protocol!r:.40}")
  sys_info, pos = header(pos, "system info (pickle 3 of 5)")
  if not isinstance(sys_info, dict):
    raise _Bad("the system info is not a dict")
  if sys_info.get("little_endian", True) is not True:
    raise _Bad("big-endian checkpoints are not supported")
  storages: dict[str, _Storage] = {}
  obj, pos = safe_pickle.loads(
      data, pos=pos, allowed=_STATE_DICT_GLOBALS,
      persistent_load=_storage_loader(storages),
      where=" in the state dict (pickle 4 of 5)")
  keys, pos = header(pos, "storage keys (pickle 5 of 5)")
  if not isinstance(keys, list) or not all(
      isinstance(k, (str, int)) and not isinstance(k, bool) for k in keys):
    raise _Bad("the storage keys are not a list of names")
  keys = [str(k) for k in keys]
  if set(keys) != set(storages) or len(set(keys)) != len(keys):
    raise _Bad("the storage keys do not match the storages the tensors use")
  for key in keys:
    st = storages[key]
    if pos + 8 > len(data):
      raise _Bad("file is truncated (storage header)")
    (numel,) = struct.unpack_from("<q", data, pos)
    pos += 8
    nbytes = numel * st.dtype.itemsize
    if numel < 0 or pos + nbytes > len(data):
      raise _Bad(f"file is truncated (storage {key} declares {numel} "
                 f"elements, {max(len(data) - pos, 0)} bytes remain)")
    if numel < st.numel:
      raise _Bad(f"storage {key} holds {numel} elements, its tensors need "
                 f"{st.numel}")
    _fill(st, data[pos:pos + nbytes], numel)
    pos += nbytes
  return obj


def loads_state_dict(data: bytes, *, name: str = "<bytes>"
                     ) -> dict[str, np.ndarray]:
  """Reads a PyTorch checkpoint held in memory (see ``load_state_dict``).

  Args:
    data: the file's bytes.
    name: how messages refer to it (the path, for ``load_state_dict``).
  """
  try:
    if data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data)):
      obj = _load_zip(data)
    else:
      obj = _load_legacy(data)
    obj = _materialise(obj)
  except safe_pickle.ForbiddenError as e:
    raise UnsafeCheckpointError(f"{name}: {e}") from None
  except safe_pickle.PickleError as e:
    raise CheckpointFormatError(f"{name}: {e}") from None
  except (RecursionError, MemoryError, OverflowError, zipfile.BadZipFile,
          zipfile.LargeZipFile, EOFError, ValueError, TypeError, KeyError,
          IndexError, struct.error, NotImplementedError,
          RuntimeError) as e:  # damaged data that slipped past the checks
    raise CheckpointFormatError(
        f"{name}: damaged or unsupported checkpoint ({type(e).__name__}: "
        f"{str(e)[:200]})") from None
  if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict) or not obj or not all(
      isinstance(k, str) and isinstance(v, np.ndarray)
      for k, v in obj.items()):
    raise CheckpointFormatError(f"{name}: the file does not hold a state "
                                "dict of tensors")
  return obj


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a PyTorch ``.pth`` file into a dict of NumPy arrays, without torch.

  Nothing in the file is executed (see the module docstring).

  Args:
    path: a ``.pth``/``.pt`` file in PyTorch's legacy or zip format, holding a
      state dict (or a dict with a ``state_dict`` entry).

  Returns:
    An ordered dict ``name -> np.ndarray`` (PyTorch layouts, e.g. OIHW).

  Raises:
    FileNotFoundError: the path does not exist.
    UnsafeCheckpointError: the pickle references anything but tensors and
      plain containers (a subclass of ``CheckpointFormatError``).
    CheckpointFormatError: the file is not a readable PyTorch checkpoint;
      the message starts with the path.
  """
  size = os.path.getsize(path)
  if size > MAX_FILE_BYTES:
    raise CheckpointFormatError(f"{path}: {size} bytes, larger than any "
                                f"DCE-Net checkpoint ({MAX_FILE_BYTES})")
  with open(path, "rb") as f:
    data = f.read()
  return loads_state_dict(data, name=path)
