"""Room: core. Cheap constructors for the frozen, slotted record classes the scheduler emits.

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__(self, name, value)`` (a name lookup and a call per field); the
scheduler builds about a dozen records per task lifecycle, so that showed in the core
benchmark. A constructor made here fills an instance of a mutable twin class with the very
same slots (plain attribute stores), then makes it an instance of the record class
(``__class__`` assignment, allowed between classes of identical layout). The result is an
ordinary instance of the record class: same fields, equality, hash, repr, still frozen.
Internal: callers pass every field, positionally.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable


def fast_constructor(cls: type) -> Callable[..., Any]:
    """``make(*every_field)`` -> an instance of the slotted dataclass ``cls``, without its ``__init__``."""
    names = [f.name for f in fields(cls)]
    if tuple(names) != tuple(cls.__slots__) or cls.__bases__ != (object,):
        raise TypeError(f"{cls.__name__}: fast_constructor needs a slotted dataclass without base classes")
    twin = type(f"_Mutable{cls.__name__}", (), {"__slots__": tuple(names)})
    body = ["    obj = _new(_twin)"]
    body += [f"    obj.{name} = {name}" for name in names]
    body += ["    obj.__class__ = _cls", "    return obj"]
    source = f"def make_{cls.__name__}({', '.join(names)}):\n" + "\n".join(body) + "\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    exec(source, namespace)  # noqa: S102 - generated from the class's own field names
    make = namespace[f"make_{cls.__name__}"]
    sample = make(*names)  # fails here, at import, if the layouts ever stop matching
    if sample != cls(*names):
        raise TypeError(f"{cls.__name__}: fast_constructor built a different record")
    return make
