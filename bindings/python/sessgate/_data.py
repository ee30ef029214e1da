"""sessgate._data - what session data may hold, said and enforced.

Session data is stored as JSON and read back by every process sharing the
store (Python, Lua, the gateway, sessgatectl).  Python's json module
changes some values silently: a tuple comes back as a list, an int key as
a str, and it writes NaN and Infinity, which no other JSON reader accepts.
So before data is encoded, :func:`check` walks it (without recursion) and
raises :class:`sessgate.NotSerializable` (a ``TypeError``) naming the
place of the first value that would not come back as it went in:

- dict keys must be ``str``;
- values must be ``dict``, ``list``, ``str``, ``int``, ``float`` (finite),
  ``bool`` or ``None`` (subclasses of these too: a ``str`` enum is its
  string);
- tuples, sets, bytes, datetimes, Decimals, objects: refused, unless the
  store has a ``json_default`` hook, which is called with the value (as
  ``json.dumps``'s ``default``) and returns its JSON replacement.  The
  conversion is then one-way and deliberate: a datetime stored as an ISO
  string reads back as that string.

Nesting deeper than :data:`sessgate.MAX_DEPTH` raises
:class:`sessgate.TooBig` (the library refuses it too).

Typed models (:func:`to_model`, :func:`from_model`, ``Store(model=...)``):
a dataclass, or a pydantic model (v1 or v2) where pydantic is installed.
Dataclasses are validated here: every field present or defaulted, no
unknown keys, and values of the field's plain type (``int``, ``str``,
``float``, ``bool``, ``list``, ``dict``, ``Optional[...]``, ``List[...]``,
``Dict[str, ...]``, nested dataclasses); pydantic validates its own.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Tuple, Type, TypeVar, Union)

from . import sessgate_core as _core
from .errors import InvalidArgument, TooBig

__all__ = ["NotSerializable", "InvalidData", "check", "to_model",
           "from_model", "validate"]

MAX_DEPTH: int = _core.SG_MAX_DEPTH
JSONDefault = Optional[Callable[[Any], Any]]
T = TypeVar("T")


class NotSerializable(InvalidArgument, TypeError):
    """A value JSON cannot carry unchanged (a tuple, an int key, a datetime,
    NaN...).  Also a ``TypeError``, as ``json.dumps`` would raise."""


class InvalidData(InvalidArgument):
    """Session data that does not fit the session's model."""


def _where(path: Tuple[Any, ...]) -> str:
    return "session data" + "".join(f"[{p!r}]" for p in path)


def _too_deep() -> TooBig:
    return TooBig(f"session data: nested deeper than the limit of {MAX_DEPTH}"
                  f" levels (sessgate.MAX_DEPTH; the data object is level 1)",
                  _core.SG_ETOOBIG)


def _refuse(value: Any, path: Tuple[Any, ...]) -> NotSerializable:
    kind = type(value).__name__
    if isinstance(value, tuple):
        why = "a tuple would come back as a list: store a list"
    elif isinstance(value, (set, frozenset)):
        why = "JSON has no sets: store a sorted list"
    elif isinstance(value, float):
        why = f"{value!r} is not valid JSON (other readers reject it)"
    elif hasattr(value, "isoformat"):
        why = ("JSON has no dates: store value.isoformat() or a Unix time, "
               "or give the store a json_default hook")
    else:
        why = ("not a JSON type (dict, list, str, int, float, bool, None); "
               "convert it, or give the store a json_default hook")
    return NotSerializable(f"{_where(path)}: {kind} not allowed: {why}",
                           _core.SG_EINVAL)


def check(data: Any, default: JSONDefault = None) -> Any:
    """Check that data is a dict that JSON round-trips unchanged; return it,
    or, when ``default`` is given and some value needs it, a copy with
    those values replaced by ``default(value)``.  Raises NotSerializable or
    TooBig."""
    if not isinstance(data, dict):
        raise NotSerializable("session data must be a dict (a JSON object), "
                              f"not {type(data).__name__}", _core.SG_EINVAL)
    try:
        _walk(data)
        return data
    except NotSerializable:
        if default is None:
            raise
    converted = _replace_all(_deep_copy(data), default)
    _walk(converted)            # the hook's answers obey the same rules
    return converted


def _walk(data: Dict[str, Any], track: bool = False) -> None:
    # (value, depth, path); the data object is level 1.  No recursion: the
    # depth is checked before json would hit the interpreter's limit.  The
    # path (for the message) is tracked only on a second walk after an
    # error: building it costs a tuple per value.
    if not track:
        try:
            return _walk_fast(data)
        except NotSerializable:
            _walk(data, True)
            raise
    todo: List[Tuple[Any, int, Tuple[Any, ...]]] = [(data, 1, ())]
    while todo:
        value, depth, path = todo.pop()
        if isinstance(value, (str, bool, int)) or value is None:
            continue
        if isinstance(value, float) and math.isfinite(value):
            continue
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise _too_deep()
            for k, v in value.items():
                if not isinstance(k, str):
                    raise NotSerializable(
                        f"{_where(path)}: key {k!r} is a {type(k).__name__}: "
                        "JSON keys are strings, it would come back as "
                        f"{str(k)!r}; use str keys", _core.SG_EINVAL)
                todo.append((v, depth + 1, path + (k,)))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            todo.extend((v, depth + 1, path + (i,)) for i, v in enumerate(value))
        else:
            raise _refuse(value, path)


def _walk_fast(data: Dict[str, Any]) -> None:
    """_walk without paths (the message then says "session data")."""
    todo: List[Tuple[Any, int]] = [(data, 1)]
    pop, push = todo.pop, todo.append
    while todo:
        value, depth = pop()
        if isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise _too_deep()
            depth += 1
            for k, v in value.items():
                if type(k) is not str and not isinstance(k, str):
                    raise NotSerializable("", _core.SG_EINVAL)
                if isinstance(v, (dict, list)):
                    push((v, depth))
                elif not (isinstance(v, (str, bool, int)) or v is None or
                          (isinstance(v, float) and math.isfinite(v))):
                    raise NotSerializable("", _core.SG_EINVAL)
        else:                   # a list
            if depth > MAX_DEPTH:
                raise _too_deep()
            depth += 1
            for v in value:
                if isinstance(v, (dict, list)):
                    push((v, depth))
                elif not (isinstance(v, (str, bool, int)) or v is None or
                          (isinstance(v, float) and math.isfinite(v))):
                    raise NotSerializable("", _core.SG_EINVAL)


def _deep_copy(v: Any) -> Any:
    todo = []
    root: Any = dict(v) if isinstance(v, dict) else v
    todo.append(root)
    while todo:
        c = todo.pop()
        items: Iterable[Any] = c.items() if isinstance(c, dict) else enumerate(c)
        for k, x in list(items):
            if isinstance(x, dict):
                c[k] = dict(x)
                todo.append(c[k])
            elif isinstance(x, list):
                c[k] = list(x)
                todo.append(c[k])
    return root


def _replace_all(data: Dict[str, Any], default: Callable[[Any], Any]) -> Any:
    """data (a private copy) with every non-JSON value replaced by
    default(value), depth first, bounded by MAX_DEPTH + 1 levels."""
    todo: List[Tuple[Any, int]] = [(data, 1)]
    while todo:
        c, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        items = list(c.items()) if isinstance(c, dict) else list(enumerate(c))
        for k, x in items:
            if isinstance(x, (dict, list)):
                todo.append((x, depth + 1))
            elif not (x is None or isinstance(x, (str, bool, int)) or
                      (isinstance(x, float) and math.isfinite(x))):
                new = default(x)
                if type(new) is type(x):
                    raise _refuse(x, ())
                if isinstance(new, dict):
                    new = dict(new)
                elif isinstance(new, list):
                    new = list(new)
                c[k] = new
                if isinstance(new, (dict, list)):
                    todo.append((new, depth + 1))
    return data


# ------------------------------------------------------------ models

def _is_pydantic(cls: Any) -> bool:
    return hasattr(cls, "model_validate") or hasattr(cls, "parse_obj")


def _plain(tp: Any, value: Any, path: Tuple[Any, ...]) -> None:
    """InvalidData unless value fits the (simple) annotation tp."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return
    if origin is Union:
        errors = []
        for a in args:
            try:
                _plain(a, value, path)
                return
            except InvalidData as e:
                errors.append(str(e))
        raise InvalidData(errors[0] if errors else f"{_where(path)}: no match",
                          _core.SG_EINVAL)
    if tp is type(None):
        if value is None:
            return
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            _check_fields(tp, value, path)
            return
    elif origin in (list, List) or tp is list:
        if isinstance(value, list):
            if args:
                for i, v in enumerate(value):
                    _plain(args[0], v, path + (i,))
            return
    elif origin in (dict, Dict) or tp is dict:
        if isinstance(value, dict):
            if len(args) == 2:
                for k, v in value.items():
                    _plain(args[1], v, path + (k,))
            return
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return
    else:
        return                  # an annotation we do not check (Literal...)
    raise InvalidData(f"{_where(path)}: {value!r} is not {_tname(tp)}",
                      _core.SG_EINVAL)


def _tname(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_fields(cls: Any, data: Mapping[str, Any], path: Tuple[Any, ...]) -> None:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            raise InvalidData(f"{_where(path + (k,))}: not a field of "
                              f"{cls.__name__}", _core.SG_EINVAL)
    for name, f in fields.items():
        if name in data:
            _plain(hints.get(name, Any), data[name], path + (name,))
        elif (f.default is dataclasses.MISSING and
              f.default_factory is dataclasses.MISSING):
            raise InvalidData(f"{_where(path + (name,))}: missing (a "
                              f"required field of {cls.__name__})",
                              _core.SG_EINVAL)


def _build(cls: Any, data: Mapping[str, Any]) -> Any:
    """An instance of dataclass cls from checked data, nested dataclasses
    (also inside Optional, List and Dict) built too."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _value(hints.get(f.name, Any), data[f.name])
              for f in dataclasses.fields(cls) if f.init and f.name in data}
    return cls(**kwargs)


def _value(tp: Any, v: Any) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(v, dict):
        return _build(tp, v)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        for a in args:
            if dataclasses.is_dataclass(a) and isinstance(v, dict):
                return _build(a, v)
    elif origin is list and args and isinstance(v, list):
        return [_value(args[0], x) for x in v]
    elif origin is dict and len(args) == 2 and isinstance(v, dict):
        return {k: _value(args[1], x) for k, x in v.items()}
    return v


def validate(cls: Any, data: Mapping[str, Any]) -> None:
    """InvalidData unless data fits the model cls."""
    to_model(cls, data)


def to_model(cls: Type[T], data: Mapping[str, Any]) -> T:
    """A new instance of the model cls made from data, validated."""
    if _is_pydantic(cls):
        try:
            if hasattr(cls, "model_validate"):
                return cls.model_validate(dict(data))     # type: ignore[attr-defined, no-any-return]
            return cls.parse_obj(dict(data))              # type: ignore[attr-defined, no-any-return]
        except (ValueError, TypeError) as e:   # pydantic.ValidationError
            raise InvalidData(f"session data does not fit {cls.__name__}: "
                              f"{e}", _core.SG_EINVAL) from e
    if dataclasses.is_dataclass(cls) and isinstance(cls, type):
        _check_fields(cls, data, ())
        return _build(cls, data)  # type: ignore[no-any-return]
    raise TypeError(f"a session model must be a dataclass or a pydantic "
                    f"model, not {cls!r}")


def from_model(obj: Any) -> Dict[str, Any]:
    """The data of a model instance, validated against its class."""
    cls = type(obj)
    if _is_pydantic(cls):
        d: Dict[str, Any] = dict(
            obj.model_dump(mode="json") if hasattr(obj, "model_dump")
            else json.loads(obj.json()))
        to_model(cls, d)
        return d
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        d = dict(dataclasses.asdict(obj))
        _check_fields(cls, d, ())
        return d
    raise TypeError(f"not a session model instance (dataclass or pydantic "
                    f"model): {obj!r}")
