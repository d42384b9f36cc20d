"""The torch-free .pth reader, on files written here in both of PyTorch's
formats (a stand-in ``torch`` module makes pickle emit the same globals that
torch.save does), and on hostile files."""

import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import time
import types
import zipfile

import numpy as np
import pytest
from _support import optional

from zerodce_jax.formats import torch_pickle


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


# ---------------------------------------------------------------------------
# Hostile files. Each payload would create ``marker`` if it were unpickled by
# Python's pickle (``test_payloads_are_live`` proves it); the reader must
# refuse every one with a clear error and create nothing.

_MAGIC = 0x1950A86A20F9469CFC6C
_SYS_INFO = {"protocol_version": 1001, "little_endian": True,
             "type_sizes": {"short": 2, "int": 4, "long": 4}}


def _u(text):  # BINUNICODE
  raw = text.encode()
  return b"X" + struct.pack("<I", len(raw)) + raw


class _System:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


class _Eval:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


def _payloads(marker):
  """name -> pickle bytes that run code creating ``marker`` when loaded."""
  cmd = f"touch {marker}"
  od = collections.OrderedDict(w=1)
  od.__dict__["_metadata"] = _System(marker)  # pickled as OrderedDict BUILD
  return {
      "os.system": pickle.dumps(_System(marker), protocol=2),
      "builtins.eval": pickle.dumps(_Eval(marker), protocol=2),
      "nested": pickle.dumps({"a": [1, {"b": (2, _System(marker))}]},
                             protocol=2),
      "ordereddict_items": pickle.dumps(
          collections.OrderedDict(w=_System(marker)), protocol=2),
      "ordereddict_build": pickle.dumps(od, protocol=2),
      # builtins.getattr(builtins.__import__("os"), "system")(cmd)
      "builtins.getattr": (
          b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\n" + _u("os")
          + b"\x85R" + _u("system") + b"\x86R" + _u(cmd) + b"\x85R."),
      # protocol 0 INST and OBJ call os.system directly
      "inst": b"(S'" + cmd.encode() + b"'\nios\nsystem\n.",
      "obj": b"(cos\nsystem\nS'" + cmd.encode() + b"'\no.",
  }


def test_payloads_are_live(tmp_path):
  """Sanity: Python's own pickle runs each payload (so refusing matters)."""
  for name, payload in _payloads(tmp_path / "m").items():
    marker = tmp_path / "m"
    pickle.loads(payload)  # noqa: S301 - that is the point
    assert marker.exists(), name
    marker.unlink()


def _legacy_bytes(pickles, storages=b""):
  return b"".join(pickles) + storages


def _good_legacy_parts(fake_torch):
  state, storages = _state(fake_torch)
  buf = io.BytesIO()
  _pickler(buf, fake_torch).dump(state)
  parts = [pickle.dumps(_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
           pickle.dumps(_SYS_INFO, protocol=2), buf.getvalue(),
           pickle.dumps(list(storages), protocol=2)]
  raw = b"".join(struct.pack("<q", a.size) + a.tobytes()
                 for a in storages.values())
  return parts, raw


def _hostile_files(tmp_path, fake_torch):
  """(description, path, offending global or None) for every hostile file."""
  marker = tmp_path / "pwned"
  out = []
  parts, raw = _good_legacy_parts(fake_torch)
  for name, payload in _payloads(marker).items():
    for pos in range(5):  # the payload in each of the five legacy pickles
      bad = list(parts)
      bad[pos] = payload
      path = tmp_path / f"legacy_{pos + 1}_{name}.pth"
      path.write_bytes(_legacy_bytes(bad, raw))
      out.append((f"legacy pickle {pos + 1}: {name}", path))
    path = tmp_path / f"zip_{name}.pth"
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", payload)
    out.append((f"zip data.pkl: {name}", path))
  # a payload inside an otherwise valid tensor rebuild call
  st = _Storage("0", np.arange(4, dtype=np.float32))
  for where, tensor in [
      ("hooks", _Hostile(st, hooks=collections.OrderedDict(
          h=_System(marker)))),
      ("extra argument", _Hostile(st, extra=_System(marker))),
      ("storage", _Hostile(_System(marker)))]:
    buf = io.BytesIO()
    _pickler(buf, fake_torch).dump({"w": tensor})
    path = tmp_path / f"tensor_{where.replace(' ', '_')}.pth"
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", buf.getvalue())
      z.writestr("archive/data/0", st.array.tobytes())
    out.append((f"tensor rebuild, payload in its {where}", path))
  return out, marker


class _Hostile:
  """A tensor whose rebuild call carries extra (hostile) arguments."""

  def __init__(self, storage, hooks=None, extra=None):
    self.storage, self.hooks, self.extra = storage, hooks, extra

  def __reduce__(self):
    args = (self.storage, 0, (4,), (1,), False,
            self.hooks if self.hooks is not None else collections.OrderedDict())
    if self.extra is not None:
      args += (self.extra,)
    return (sys.modules["torch._utils"]._rebuild_tensor_v2, args)


def test_every_hostile_file_is_refused_without_side_effect(tmp_path,
                                                           fake_torch):
  files, marker = _hostile_files(tmp_path, fake_torch)
  assert len(files) == 8 * 6 + 3
  for what, path in files:
    with pytest.raises(torch_pickle.UnsafeCheckpointError) as info:
      torch_pickle.load_state_dict(str(path))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path)), what
    offending = ["posix.system", "os.system", "builtins.eval",
                 "builtins.getattr"]
    if "ordereddict" in what and "state dict" not in msg and "zip" not in what:
      offending.append("collections.OrderedDict")  # no global in a header
    assert "refusing" in msg and any(g in msg for g in offending), (what, msg)
    assert not marker.exists(), what


def test_cli_convert_refuses_each_hostile_file_in_one_line(tmp_path,
                                                           fake_torch, capsys):
  from zerodce_jax import cli
  files, marker = _hostile_files(tmp_path, fake_torch)
  out = tmp_path / "out.msgpack"
  for what, path in files:
    assert cli.main(["convert", str(path), "-o", str(out)]) == 2, what
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, (what, err)
    assert str(path) in err and "refusing" in err, (what, err)
    assert not marker.exists() and not out.exists(), what


@pytest.mark.slow
def test_console_script_refuses_a_payload_in_the_legacy_header(tmp_path,
                                                               fake_torch):
  """End to end, as a user runs it: the case that used to run a command."""
  files, marker = _hostile_files(tmp_path, fake_torch)
  path = dict(files)["legacy pickle 1: os.system"]
  proc = subprocess.run(
      [sys.executable, "-m", "zerodce_jax", "convert", str(path), "-o",
       str(tmp_path / "o.msgpack")], capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and "posix.system" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not marker.exists() and not (tmp_path / "o.msgpack").exists()


def _raw_state(fake_torch, tensors, storages):
  """A zip checkpoint from hand-written tensor args (for malformed ones)."""
  buf = io.BytesIO()
  _pickler(buf, fake_torch).dump(tensors)
  z = io.BytesIO()
  with zipfile.ZipFile(z, "w") as zf:
    zf.writestr("archive/data.pkl", buf.getvalue())
    for k, arr in storages.items():
      zf.writestr(f"archive/data/{k}", arr.tobytes())
  return z.getvalue()


class _Args:
  """A tensor rebuild call with arbitrary (wrong) arguments."""

  def __init__(self, *args):
    self.args = args

  def __reduce__(self):
    return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.mark.parametrize("args,match", [
    (("not a storage", 0, (2,), (1,)), "storage is a str"),
    ((None, 0, (2,), (1,), False, collections.OrderedDict()), "storage"),
    (("S", -1, (2,), (1,), False, collections.OrderedDict()), "offset"),
    (("S", 2**70, (2,), (1,), False, collections.OrderedDict()), "offset"),
    (("S", 0, "ab", (1,), False, collections.OrderedDict()), "size"),
    (("S", 0, (2, 2), (1,), False, collections.OrderedDict()), "differ"),
    (("S", 0, (2,), (1,), "yes", collections.OrderedDict()), "requires_grad"),
    (("S", 0, (2,), (1,), False, {"hook": 1}), "hooks"),
    (("S", 0, (10**6, 10**6), (0, 0), False, collections.OrderedDict()),
     "elements on a storage of 4"),
    (("S", 0, (3,), (2,), False, collections.OrderedDict()), "past the end"),
    (("S", 0, (1,) * 9, (1,) * 9, False, collections.OrderedDict()), "at most"),
])
def test_tensor_rebuild_with_wrong_arguments(fake_torch, args, match):
  st = _Storage("0", np.arange(4, dtype=np.float32))
  args = tuple(st if a == "S" else a for a in args)
  data = _raw_state(fake_torch, {"w": _Args(*args)}, {"0": st.array})
  with pytest.raises(torch_pickle.CheckpointFormatError, match=match):
    torch_pickle.loads_state_dict(data)


def _peak_bytes(fn):
  import tracemalloc
  tracemalloc.start()
  try:
    fn()
  finally:
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
  return peak


def test_resource_bombs_fail_before_allocating(fake_torch):
  parts, raw = _good_legacy_parts(fake_torch)
  # a storage whose element count claims 2**60 elements
  bomb = _legacy_bytes(parts, struct.pack("<q", 2**60) + raw[8:])
  # a BINUNICODE that declares 2 GB inside the state dict
  text_bomb = _legacy_bytes(parts[:3] + [b"\x80\x02X\xff\xff\xff\x7fabc."])
  # a persistent id declaring a storage of 2**40 elements
  st = _Storage("0", np.zeros(1, np.float32))
  buf = io.BytesIO()
  p = pickle.Pickler(buf, protocol=2)
  p.persistent_id = lambda o: (("storage", fake_torch.FloatStorage, "0",
                                "cpu", 2**40) if o is st else None)
  p.dump({"w": _Args(st, 0, (1,), (1,), False, collections.OrderedDict())})
  pid_bomb = _legacy_bytes(parts[:3] + [buf.getvalue(), parts[4]], raw)
  cases = [(bomb, "truncated"), (text_bomb, "truncated"),
           (pid_bomb, "storage size")]
  for data, match in cases:
    def load():
      with pytest.raises(torch_pickle.CheckpointFormatError, match=match):
        torch_pickle.loads_state_dict(data)
    assert _peak_bytes(load) < 20 * 2**20


def test_zip_bomb_and_missing_storage(fake_torch):
  import zlib
  assert zlib  # deflate is what makes a zip bomb
  z = io.BytesIO()
  with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("archive/data.pkl", b"\0" * (65 * 2**20))
  assert len(z.getvalue()) < 2**20
  with pytest.raises(torch_pickle.CheckpointFormatError, match="data.pkl"):
    torch_pickle.loads_state_dict(z.getvalue())
  # a storage declared in data.pkl but absent from the archive
  st = _Storage("0", np.arange(4, dtype=np.float32))
  data = _raw_state(fake_torch, {"w": _Args(st, 0, (4,), (1,), False,
                                            collections.OrderedDict())}, {})
  with pytest.raises(torch_pickle.CheckpointFormatError,
                     match="not in the archive"):
    torch_pickle.loads_state_dict(data)
  # a storage member holding more bytes than its tensors need
  data = _raw_state(fake_torch, {"w": _Args(st, 0, (4,), (1,), False,
                                            collections.OrderedDict())},
                    {"0": np.zeros(1000, np.float32)})
  with pytest.raises(torch_pickle.CheckpointFormatError, match="declares"):
    torch_pickle.loads_state_dict(data)


def test_shared_and_cyclic_containers():
  # 60 levels of a list holding the next one twice: 2**60 paths, 61 lists
  body = bytearray(b"\x80\x02]q\x00")
  for i in range(1, 61):
    body += b"0(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"lq" + bytes([i])
  body += b"."
  start = time.perf_counter()
  with pytest.raises(torch_pickle.CheckpointFormatError,
                     match="does not hold a state dict"):
    torch_pickle.loads_state_dict(_legacy_bytes(
        [pickle.dumps(o, protocol=2) for o in (_MAGIC, 1001, _SYS_INFO)]
        + [bytes(body), pickle.dumps([], protocol=2)]))
  assert time.perf_counter() - start < 5
  cyclic = b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s."  # d["a"] = d
  with pytest.raises(torch_pickle.CheckpointFormatError, match="themselves"):
    torch_pickle.loads_state_dict(_legacy_bytes(
        [pickle.dumps(o, protocol=2) for o in (_MAGIC, 1001, _SYS_INFO)]
        + [cyclic, pickle.dumps([], protocol=2)]))


def _real_files(shared):
  return [shared / "weights" / n for n in ("zerodce_official_epoch99.pth",
                                           "zerodce_pp_official_epoch99.pth")]


def _load_or_clear_error(data):
  """The only two acceptable outcomes for a damaged file."""
  try:
    out = torch_pickle.loads_state_dict(data, name="damaged.pth")
  except torch_pickle.CheckpointFormatError as e:
    assert str(e).startswith("damaged.pth: ") and "\n" not in str(e)
    return None
  assert all(isinstance(v, np.ndarray) for v in out.values())
  return out


def test_truncated_and_bit_flipped_official_files(shared):
  from zerodce_jax.formats import convert
  rng = np.random.default_rng(0)
  for path in _real_files(shared):
    data = path.read_bytes()
    good = torch_pickle.loads_state_dict(data)
    # every cut through the pickles, then every 997th byte of the storages
    head = 4200 if data[:2] == b"PK" else 2300
    cuts = list(range(0, head, 7)) + list(range(head, len(data), 997))
    for cut in cuts:
      assert _load_or_clear_error(data[:cut]) is None, (path.name, cut)
    loaded = failed = 0
    for _ in range(400):
      flipped = bytearray(data)
      pos = int(rng.integers(0, head if rng.random() < 0.8 else len(data)))
      flipped[pos] ^= 1 << int(rng.integers(0, 8))
      out = _load_or_clear_error(bytes(flipped))
      if out is None:
        failed += 1
        continue
      loaded += 1
      try:  # what `zerodce convert` does next: valid, or a clear ValueError
        convert.convert_state_dict(out)
      except ValueError as e:
        assert "\n" not in str(e)
    assert failed > 50, (path.name, failed)  # the flips did damage things
    assert set(good) and loaded + failed == 400


def test_random_bytes_never_crash():
  hypothesis = optional("hypothesis", extra="test")
  st = hypothesis.strategies
  prefix = b"".join(pickle.dumps(o, protocol=2)
                    for o in (_MAGIC, 1001, _SYS_INFO))

  @hypothesis.settings(max_examples=300, deadline=None, database=None,
                       derandomize=True)
  @hypothesis.given(st.binary(max_size=512),
                    st.sampled_from([b"", prefix, b"PK\x03\x04", b"\x80\x02"]))
  def check(tail, head):
    _load_or_clear_error(head + tail)

  check()
