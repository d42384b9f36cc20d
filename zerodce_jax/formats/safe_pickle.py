"""A pickle reader that cannot run code: a small pickle machine of its own.

Python's ``pickle`` module executes whatever callables a pickle names
(``os.system``, ``builtins.eval``...), and even a ``find_class`` allow-list
leaves ``BUILD`` free to mutate the allowed objects. This module never calls
``pickle.load``: it interprets the opcodes itself and supports only what
plain data needs:

  * scalars, strings, bytes, tuples, lists and dicts (``MARK``, ``PUT``/
    ``GET``/``MEMOIZE``, ``APPEND(S)``, ``SETITEM(S)``, ``FRAME``...);
  * ``GLOBAL``/``STACK_GLOBAL`` only for names in the caller's allow-list,
    which maps them to values the caller chose (never to the real object);
  * ``REDUCE`` only on allow-listed ``Callable`` values, which the caller
    writes to check their arguments;
  * ``BUILD`` only on dicts, whose extra state (``OrderedDict.__dict__``,
    e.g. PyTorch's ``_metadata``) is checked to be a dict and dropped;
  * persistent ids (``BINPERSID``) only through the caller's function.

Everything else (``INST``, ``OBJ``, ``NEWOBJ``, ``NEWOBJ_EX``, extension
codes, sets, out-of-band buffers, protocol > 5) is refused. Limits keep a
hostile pickle from allocating much more than its own size: declared lengths
are checked against the bytes present before anything is read, integers are
bounded, and the pickle's size is capped.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, Callable, Mapping

__all__ = ["loads", "Allowed", "PickleError", "ForbiddenError",
           "MAX_PICKLE_BYTES"]

# A state dict's pickle is a few kB per tensor; nothing legitimate is near.
MAX_PICKLE_BYTES = 64 * 2**20
_MAX_LONG_BYTES = 64          # LONG1/LONG4 payloads (torch needs <= 10)
_MAX_TEXT_INT_DIGITS = 100    # INT/LONG in protocol-0 text form


class PickleError(ValueError):
  """The bytes are not a pickle this reader accepts (damaged, unsupported)."""


class ForbiddenError(PickleError):
  """The pickle asks for a global or an operation outside the allow-list."""


@dataclasses.dataclass(frozen=True)
class Allowed:
  """An allow-listed callable: ``REDUCE`` calls ``fn(*args)``.

  ``name`` is the global it stands for (for messages). ``fn`` must check its
  arguments and raise ``PickleError`` on anything unexpected.
  """
  name: str
  fn: Callable[..., Any]


def _refuse_global(module: str, name: str, where: str) -> ForbiddenError:
  return ForbiddenError(
      f"refusing global {module}.{name}{where}: only tensors and plain "
      "containers are allowed (the file may be trying to run code)")


def loads(data: bytes, *, pos: int = 0,
          allowed: Mapping[tuple[str, str], Any] | None = None,
          persistent_load: Callable[[Any], Any] | None = None,
          where: str = "",
          max_bytes: int = MAX_PICKLE_BYTES) -> tuple[Any, int]:
  """Reads one pickle from ``data[pos:]`` without running any of its code.

  Args:
    data: the bytes (a whole file is fine: reading stops at ``STOP``).
    pos: offset of the pickle's first opcode.
    allowed: ``(module, name) -> value`` for the globals the pickle may name;
      ``GLOBAL`` pushes ``value`` (a ``Allowed`` for ``REDUCE`` targets, any
      marker otherwise). Every other global raises ``ForbiddenError``.
    persistent_load: called with each persistent id (``BINPERSID``); absent,
      a persistent id is refused.
    where: text appended to messages (e.g. ``" in the state dict"``).
    max_bytes: the most bytes the pickle may span.

  Returns:
    ``(object, end)``: the unpickled object (tuples, lists, dicts, scalars
    and whatever the allowed callables return) and the offset after
    ``STOP``.

  Raises:
    ForbiddenError: a global or opcode outside the allow-list.
    PickleError: truncated, damaged or unsupported data.
  """
  allowed = allowed or {}
  buf = bytes(data)
  end_limit = min(len(buf), pos + max_bytes)
  stack: list[Any] = []
  marks: list[list[Any]] = []
  memo: dict[int, Any] = {}

  def take(n: int) -> bytes:
    nonlocal pos
    if n < 0 or pos + n > end_limit:
      raise PickleError(f"truncated pickle{where}: {n} bytes declared at "
                        f"offset {pos}, {max(end_limit - pos, 0)} present")
    out = buf[pos:pos + n]
    pos += n
    return out

  def line() -> bytes:
    nonlocal pos
    nl = buf.find(b"\n", pos, end_limit)
    if nl < 0:
      raise PickleError(f"truncated pickle{where} (unterminated line)")
    out = buf[pos:nl]
    pos = nl + 1
    return out

  def u(fmt: str) -> int:
    return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

  def pop_mark() -> list[Any]:
    nonlocal stack
    if not marks:
      raise PickleError(f"damaged pickle{where}: no MARK on the stack")
    items = stack
    stack = marks.pop()
    return items

  def pop() -> Any:
    if not stack:
      raise PickleError(f"damaged pickle{where}: pop from an empty stack")
    return stack.pop()

  def top() -> Any:
    if not stack:
      raise PickleError(f"damaged pickle{where}: empty stack")
    return stack[-1]

  def text(raw: bytes) -> str:
    try:
      return raw.decode("utf-8")
    except UnicodeDecodeError:
      raise PickleError(f"damaged pickle{where}: invalid UTF-8 text") from None

  def memo_get(i: int) -> Any:
    if i not in memo:
      raise PickleError(f"damaged pickle{where}: memo entry {i} is unset")
    return memo[i]

  def glob(module: str, name: str) -> Any:
    key = (module, name)
    if key not in allowed:
      raise _refuse_global(module, name, where)
    return allowed[key]

  def set_items(d: Any, items: list[Any]) -> None:
    if not isinstance(d, dict) or len(items) % 2:
      raise PickleError(f"damaged pickle{where}: SETITEMS on a "
                        f"{type(d).__name__}")
    for i in range(0, len(items), 2):
      try:
        d[items[i]] = items[i + 1]
      except TypeError:
        raise PickleError(f"damaged pickle{where}: unhashable dict key "
                          f"({type(items[i]).__name__})") from None

  def append_items(name: str, items: list[Any]) -> None:
    lst = top()
    if not isinstance(lst, list):
      raise PickleError(f"damaged pickle{where}: {name} to a "
                        f"{type(lst).__name__}")
    lst.extend(items)

  def text_int(raw: bytes) -> int:
    raw = raw.rstrip(b"L")
    if len(raw) > _MAX_TEXT_INT_DIGITS:
      raise PickleError(f"damaged pickle{where}: integer too long")
    try:
      return int(raw)
    except ValueError:
      raise PickleError(f"damaged pickle{where}: bad integer") from None

  if pos >= len(buf):
    raise PickleError(f"no pickle{where}: the data ends at offset {pos}")
  while True:
    op = take(1)[0]
    if op == 0x80:  # PROTO
      proto = take(1)[0]
      if proto > 5:
        raise PickleError(f"unsupported pickle protocol {proto}{where}")
    elif op == 0x95:  # FRAME: a size hint only
      take(8)
    elif op == 0x2E:  # STOP
      if len(stack) != 1 or marks:
        raise PickleError(f"damaged pickle{where}: {len(stack)} objects left "
                          "at STOP")
      return stack[0], pos
    elif op == 0x28:  # MARK
      marks.append(stack)
      stack = []
    elif op == 0x30:  # POP
      if stack:
        stack.pop()
      else:
        pop_mark()
    elif op == 0x31:  # POP_MARK
      pop_mark()
    elif op == 0x32:  # DUP
      stack.append(top())
    # ---- scalars
    elif op == 0x4E:  # NONE
      stack.append(None)
    elif op == 0x88:  # NEWTRUE
      stack.append(True)
    elif op == 0x89:  # NEWFALSE
      stack.append(False)
    elif op == 0x4A:  # BININT
      stack.append(u("<i"))
    elif op == 0x4B:  # BININT1
      stack.append(u("<B"))
    elif op == 0x4D:  # BININT2
      stack.append(u("<H"))
    elif op in (0x8A, 0x8B):  # LONG1, LONG4
      n = u("<B") if op == 0x8A else u("<i")
      if n > _MAX_LONG_BYTES:
        raise PickleError(f"damaged pickle{where}: a {n}-byte integer")
      stack.append(int.from_bytes(take(n), "little", signed=True))
    elif op == 0x49:  # INT (text; also the protocol-0 booleans)
      raw = line()
      stack.append({b"00": False, b"01": True}.get(raw) if raw in (
          b"00", b"01") else text_int(raw))
    elif op == 0x4C:  # LONG (text)
      stack.append(text_int(line()))
    elif op == 0x47:  # BINFLOAT
      stack.append(struct.unpack(">d", take(8))[0])
    elif op == 0x46:  # FLOAT (text)
      try:
        stack.append(float(line()))
      except ValueError:
        raise PickleError(f"damaged pickle{where}: bad float") from None
    # ---- strings and bytes
    elif op == 0x58:  # BINUNICODE
      stack.append(text(take(u("<I"))))
    elif op == 0x8C:  # SHORT_BINUNICODE
      stack.append(text(take(u("<B"))))
    elif op == 0x8D:  # BINUNICODE8
      stack.append(text(take(u("<Q"))))
    elif op == 0x56:  # UNICODE (text, raw-unicode-escape)
      try:
        stack.append(line().decode("raw-unicode-escape"))
      except UnicodeDecodeError:
        raise PickleError(f"damaged pickle{where}: bad text") from None
    elif op in (0x54, 0x55):  # BINSTRING, SHORT_BINSTRING (Python 2 str)
      n = u("<i") if op == 0x54 else u("<B")
      stack.append(take(n).decode("latin-1"))
    elif op == 0x53:  # STRING (text, quoted)
      raw = line()
      if len(raw) < 2 or raw[:1] != raw[-1:] or raw[:1] not in (b"'", b'"'):
        raise PickleError(f"damaged pickle{where}: bad STRING")
      try:
        stack.append(raw[1:-1].decode("unicode-escape"))
      except UnicodeDecodeError:
        raise PickleError(f"damaged pickle{where}: bad STRING") from None
    elif op == 0x42:  # BINBYTES
      stack.append(take(u("<I")))
    elif op == 0x43:  # SHORT_BINBYTES
      stack.append(take(u("<B")))
    elif op == 0x8E:  # BINBYTES8
      stack.append(take(u("<Q")))
    # ---- containers
    elif op == 0x29:  # EMPTY_TUPLE
      stack.append(())
    elif op in (0x85, 0x86, 0x87):  # TUPLE1..3
      n = op - 0x84
      if len(stack) < n:
        raise PickleError(f"damaged pickle{where}: TUPLE{n} on a short stack")
      items = tuple(stack[-n:])
      del stack[-n:]
      stack.append(items)
    elif op == 0x74:  # TUPLE
      items = pop_mark()  # before `stack.append` is looked up: MARK rebinds
      stack.append(tuple(items))
    elif op == 0x5D:  # EMPTY_LIST
      stack.append([])
    elif op == 0x6C:  # LIST
      items = pop_mark()
      stack.append(items)
    elif op == 0x7D:  # EMPTY_DICT
      stack.append({})
    elif op == 0x64:  # DICT
      items = pop_mark()
      d: dict[Any, Any] = {}
      set_items(d, items)
      stack.append(d)
    elif op == 0x61:  # APPEND
      append_items("APPEND", [pop()])
    elif op == 0x65:  # APPENDS
      append_items("APPENDS", pop_mark())
    elif op == 0x73:  # SETITEM
      v = pop()
      k = pop()
      set_items(top(), [k, v])
    elif op == 0x75:  # SETITEMS
      items = pop_mark()
      set_items(top(), items)
    # ---- memo
    elif op == 0x71:  # BINPUT
      memo[u("<B")] = top()
    elif op == 0x72:  # LONG_BINPUT
      memo[u("<I")] = top()
    elif op == 0x70:  # PUT (text)
      memo[text_int(line())] = top()
    elif op == 0x94:  # MEMOIZE
      memo[len(memo)] = top()
    elif op == 0x68:  # BINGET
      stack.append(memo_get(u("<B")))
    elif op == 0x6A:  # LONG_BINGET
      stack.append(memo_get(u("<I")))
    elif op == 0x67:  # GET (text)
      stack.append(memo_get(text_int(line())))
    # ---- the dangerous ones, restricted
    elif op == 0x63:  # GLOBAL "module\nname\n"
      module = text(line())
      name = text(line())
      stack.append(glob(module, name))
    elif op == 0x93:  # STACK_GLOBAL
      name = pop()
      module = pop()
      if not (isinstance(module, str) and isinstance(name, str)):
        raise PickleError(f"damaged pickle{where}: STACK_GLOBAL of non-text")
      stack.append(glob(module, name))
    elif op == 0x52:  # REDUCE
      args = pop()
      fn = pop()
      if not isinstance(fn, Allowed):
        raise ForbiddenError(f"refusing to call a {type(fn).__name__}{where}:"
                             " only allow-listed functions may be called")
      if not isinstance(args, tuple):
        raise PickleError(f"damaged pickle{where}: REDUCE arguments are not "
                          "a tuple")
      stack.append(fn.fn(*args))
    elif op == 0x62:  # BUILD
      state = pop()
      obj = top()
      if not isinstance(obj, dict):
        raise ForbiddenError(f"refusing to set the state of a "
                             f"{type(obj).__name__}{where}")
      if state is not None and not (
          isinstance(state, dict) or (
              isinstance(state, tuple) and len(state) == 2
              and all(s is None or isinstance(s, dict) for s in state))):
        raise PickleError(f"damaged pickle{where}: bad BUILD state")
      # A dict's attributes (OrderedDict._metadata) carry no weights: dropped.
    elif op == 0x51:  # BINPERSID
      pid = pop()
      if persistent_load is None:
        raise ForbiddenError(f"refusing a persistent id{where}: none is "
                             "allowed here")
      stack.append(persistent_load(pid))
    elif op == 0x50:  # PERSID (text)
      raise ForbiddenError(f"refusing a text persistent id{where}")
    elif op in (0x69, 0x6F, 0x81, 0x92):  # INST, OBJ, NEWOBJ, NEWOBJ_EX
      if op == 0x69:
        module, name = text(line()), text(line())
        raise _refuse_global(module, name, where)
      raise ForbiddenError(
          f"refusing to construct an object (opcode {bytes([op])!r}){where}")
    elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
      raise ForbiddenError(f"refusing a pickle extension code{where}")
    else:
      raise PickleError(f"unsupported or invalid pickle opcode "
                        f"{bytes([op])!r} at offset {pos - 1}{where}")
    if len(marks) > 10_000:
      raise PickleError(f"damaged pickle{where}: MARKs nested too deep")
