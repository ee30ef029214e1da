# Stub for the raw module SWIG generates from bindings/sessgate.i (proxy
# classes and SG_* constants).  Users import sessgate, never this.
from typing import Any, Optional

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
SG_ENOTSUP: int
SG_GET_NOTOUCH: int
SG_GET_MEMO: int
SG_MAX_DEPTH: int
SG_DEFAULT_IDLE_TIMEOUT: int
SG_DEFAULT_ROTATE_GRACE: int
SG_ROTATE_GRACE_NONE: int
SG_ROTATE_NOW: int
SG_FACE_GATEWAY: int
SG_FACE_CLI: int
SG_FACE_BINDINGS: int

class option_info:
    name: str
    flag: str
    arg: Optional[str]
    min: int
    max: int
    def_value: int
    def_text: Optional[str]
    help: str
    faces: int

def option_at(i: int) -> Optional[option_info]: ...

def __getattr__(name: str) -> Any: ...
