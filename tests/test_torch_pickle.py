"""The torch-free .pth reader, on files written here in both of PyTorch's
formats (a stand-in ``torch`` module makes pickle emit the same globals that
torch.save does), and on hostile files."""

import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from zerodce_jax import torch_pickle


class _Storage:
  def __init__(self, key, array):
    self.key, self.array = key, array


class _Tensor:
  def __init__(self, storage, offset, size, stride):
    self.args = (storage, offset, size, stride)

  def __reduce__(self):
    storage, offset, size, stride = self.args
    return (sys.modules["torch._utils"]._rebuild_tensor_v2,
            (storage, offset, size, stride, False, collections.OrderedDict()))


@pytest.fixture
def fake_torch(monkeypatch):
  torch = types.ModuleType("torch")
  utils = types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):  # never called: only referenced by name
    raise AssertionError

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  float_storage = type("FloatStorage", (), {"__module__": "torch"})
  torch.FloatStorage = float_storage
  torch._utils = utils
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)
  return torch


def _state(fake_torch):
  base = np.arange(12, dtype=np.float32)
  st = _Storage("0", base)
  other = _Storage("1", np.array([7.5, -1.0], np.float32))
  state = collections.OrderedDict([
      # a 3x4 view, then its transpose (non-contiguous strides), then an
      # offset slice of the same storage
      ("a.weight", _Tensor(st, 0, (3, 4), (4, 1))),
      ("a.t", _Tensor(st, 0, (4, 3), (1, 4))),
      ("b.bias", _Tensor(st, 10, (2,), (1,))),
      ("c.bias", _Tensor(other, 0, (2,), (1,))),
  ])
  return state, {"0": base, "1": other.array}


def _pickler(buf, fake_torch):
  p = pickle.Pickler(buf, protocol=2)
  p.persistent_id = lambda o: (
      ("storage", fake_torch.FloatStorage, o.key, "cuda:0", o.array.size)
      if isinstance(o, _Storage) else None)
  return p


def _expect(d):
  base = np.arange(12, dtype=np.float32)
  np.testing.assert_array_equal(d["a.weight"], base.reshape(3, 4))
  np.testing.assert_array_equal(d["a.t"], base.reshape(3, 4).T)
  np.testing.assert_array_equal(d["b.bias"], [10, 11])
  np.testing.assert_array_equal(d["c.bias"], [7.5, -1.0])
  assert list(d) == ["a.weight", "a.t", "b.bias", "c.bias"]


def write_zip(path, fake_torch):
  state, storages = _state(fake_torch)
  buf = io.BytesIO()
  _pickler(buf, fake_torch).dump(state)
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    for k, arr in storages.items():
      z.writestr(f"archive/data/{k}", arr.tobytes())
    z.writestr("archive/version", "3\n")


def write_legacy(path, fake_torch, truncate=0):
  state, storages = _state(fake_torch)
  buf = io.BytesIO()
  pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
  pickle.dump(1001, buf, protocol=2)
  pickle.dump({"protocol_version": 1001, "little_endian": True,
               "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf,
              protocol=2)
  _pickler(buf, fake_torch).dump(state)
  pickle.dump(list(storages), buf, protocol=2)
  for arr in storages.values():
    buf.write(struct.pack("<q", arr.size))
    buf.write(arr.tobytes())
  data = buf.getvalue()
  with open(path, "wb") as f:
    f.write(data[:len(data) - truncate])


def test_zip_format(tmp_path, fake_torch):
  write_zip(tmp_path / "w.pth", fake_torch)
  _expect(torch_pickle.load_state_dict(str(tmp_path / "w.pth")))


def test_legacy_format(tmp_path, fake_torch):
  write_legacy(tmp_path / "w.pth", fake_torch)
  _expect(torch_pickle.load_state_dict(str(tmp_path / "w.pth")))


def test_truncated_legacy(tmp_path, fake_torch):
  write_legacy(tmp_path / "w.pth", fake_torch, truncate=5)
  with pytest.raises(torch_pickle.CheckpointFormatError, match="truncated"):
    torch_pickle.load_state_dict(str(tmp_path / "w.pth"))


def test_not_a_checkpoint(tmp_path):
  (tmp_path / "x.pth").write_bytes(b"\x89PNG\r\n\x1a\n not a checkpoint")
  with pytest.raises(torch_pickle.CheckpointFormatError):
    torch_pickle.load_state_dict(str(tmp_path / "x.pth"))
  (tmp_path / "e.pth").write_bytes(b"")
  with pytest.raises(torch_pickle.CheckpointFormatError):
    torch_pickle.load_state_dict(str(tmp_path / "e.pth"))


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_refuses_code_execution(tmp_path, fmt):
  marker = tmp_path / "pwned"
  payload = pickle.dumps({"w": _Evil(marker)}, protocol=2)
  path = tmp_path / "evil.pth"
  if fmt == "zip":
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", payload)
  else:
    head = b"".join(pickle.dumps(o, protocol=2) for o in (
        0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path.write_bytes(head + payload)
  with pytest.raises(torch_pickle.UnsafeCheckpointError, match="system"):
    torch_pickle.load_state_dict(str(path))
  assert not marker.exists()
