# Stub for the raw module SWIG generates from bindings/sessgate.i (proxy
# classes and SG_* constants).  Users import sessgate, never this.
from typing import Any

# The flat functions, typed in the stub of the C extension they come from.
from ._sessgate_core import *

SG_OK: int
SG_ENOTFOUND: int
SG_EEXPIRED: int
SG_ECONFLICT: int
SG_EINVAL: int
SG_ELOCKTIMEOUT: int
SG_ESTORE: int
SG_ENOMEM: int
SG_ETOOBIG: int
SG_GET_NOTOUCH: int
SG_MAX_DEPTH: int
SG_DEFAULT_IDLE_TIMEOUT: int

def __getattr__(name: str) -> Any: ...
