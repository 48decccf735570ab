"""Room: core. Cheap constructors for the frozen, slotted record classes the scheduler emits.

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__(self, name, value)`` (a name lookup per field); the scheduler builds
several records per task lifecycle, so that showed up in the core benchmark. These
constructors build the very same objects (same class, fields, equality, repr) by writing
the slots through their descriptors. Internal: callers pass every field, positionally.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable


def fast_constructor(cls: type) -> Callable[..., Any]:
    """``make(*every_field)`` -> an instance of the slotted dataclass ``cls``, without ``__init__``."""
    names = [f.name for f in fields(cls)]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = ["    obj = _new(_cls)"]
    for i, name in enumerate(names):
        namespace[f"_set{i}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        body.append(f"    _set{i}(obj, {name})")
    body.append("    return obj")
    source = f"def make_{cls.__name__}({', '.join(names)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # noqa: S102 - generated from the class's own field names
    return namespace[f"make_{cls.__name__}"]
