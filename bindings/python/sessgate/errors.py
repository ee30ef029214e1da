"""sessgate.errors - the exceptions of the sessgate package.

Every failure of the C library reaches Python through one rule in the SWIG
interface (bindings/sessgate.i): an error report whose code is not SG_OK
becomes an instance made by :func:`_from_core`, which picks the subclass
for the code.  The classes also derive from the closest built-in exception
(``LookupError``, ``ValueError``, ``TimeoutError``, ``MemoryError``) so
generic handlers keep working.

This module imports the raw module only for the code numbers, so the C
enum stays the single source of them.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import sessgate_core as _core

__all__ = [
    "Error", "NotFound", "Expired", "Conflict", "InvalidArgument",
    "InvalidId", "LockTimeout", "StoreError", "OutOfMemory", "TooBig",
]


class Error(Exception):
    """Any sessgate failure.  ``code`` is the C ``sg_status`` number,
    ``errno`` the system error behind a store failure (else 0)."""

    code: int = -1

    def __init__(self, message: str = "", code: Optional[int] = None,
                 errno: int = 0) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.errno = errno

    @property
    def message(self) -> str:
        """The one-line message from the library."""
        return str(self.args[0]) if self.args else ""


class NotFound(Error, LookupError):
    """No such session (or a malformed id where the C API says so)."""
    code = _core.SG_ENOTFOUND


class Expired(NotFound):
    """The session exists but is past its idle or absolute lifetime."""
    code = _core.SG_EEXPIRED


class Conflict(Error):
    """A save based on a stale version: someone saved since this copy was
    loaded.  Load it again (or use ``Store.update``) and redo the change."""
    code = _core.SG_ECONFLICT


class InvalidArgument(Error, ValueError):
    """A bad argument: invalid JSON, a bad user name, a malformed id."""
    code = _core.SG_EINVAL


class InvalidId(InvalidArgument):
    """A session id that is not a 36-character lower-case UUID."""


class LockTimeout(Error, TimeoutError):
    """The store lock was not obtained in time."""
    code = _core.SG_ELOCKTIMEOUT


class StoreError(Error):
    """An I/O or database error; ``errno`` says more."""
    code = _core.SG_ESTORE


class OutOfMemory(Error, MemoryError):
    """The library ran out of memory."""
    code = _core.SG_ENOMEM


class TooBig(Error, ValueError):
    """The session data is over the store's size cap."""
    code = _core.SG_ETOOBIG


_BY_CODE: Dict[int, Type[Error]] = {
    cls.code: cls
    for cls in (NotFound, Expired, Conflict, InvalidArgument, LockTimeout,
                StoreError, OutOfMemory, TooBig)
}


def _from_core(code: int, text: str, sys_errno: int) -> Error:
    """Called by the raw module for every failed call: the exception to
    raise for an sg_error report."""
    cls = _BY_CODE.get(code, Error)
    return cls(text, code, sys_errno)
