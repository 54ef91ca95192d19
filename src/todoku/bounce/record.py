"""Frozen records with slots for the analyzer's results, without the dataclasses module.

``@record`` gives a class what ``@dataclass(frozen=True, slots=True)`` gives it and nothing more:
an ``__init__`` taking the annotated fields in order (positionally or by name, with defaults),
``__slots__``, value equality and hashing over the fields, a readable ``__repr__``, and
assignment refused after construction. ``replace`` is ``dataclasses.replace``.

Why not dataclasses itself: ``todoku explain`` is run over bounce folders from scripts, where
start-up counts, and importing dataclasses imports inspect (and with it ast, dis, tokenize):
measured at about a quarter of the analyzer's start-up CPU time, for eight small classes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

_NO_VALUE = object()


class FrozenRecordError(AttributeError):
    """Assignment to a field of a frozen record (dataclasses.FrozenInstanceError's role)."""


class factory:  # lower case: used like dataclasses.field(default_factory=...)
    """A default made afresh for each instance (a list or dict must not be shared)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")


def record(cls: type[T]) -> type[T]:
    # The class's own annotations (not inherited ones), in order: the fields.
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 - inspect is the cost avoided
    namespace = {key: value for key, value in cls.__dict__.items()
                 if key not in names and key not in ("__dict__", "__weakref__")}
    scope: dict[str, object] = {"_NO_VALUE": _NO_VALUE, "_set": object.__setattr__}
    parameters, body = [], []
    seen_default = False
    for name in names:
        default = cls.__dict__.get(name, _NO_VALUE)
        if default is _NO_VALUE:
            if seen_default:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one "
                                "with a default")
            parameters.append(name)
            body.append(f"_set(self, {name!r}, {name})")
        elif isinstance(default, factory):
            seen_default = True
            scope[f"_make_{name}"] = default.make
            parameters.append(f"{name}=_NO_VALUE")
            body.append(f"_set(self, {name!r}, _make_{name}() if {name} is _NO_VALUE else {name})")
        else:
            seen_default = True
            scope[f"_default_{name}"] = default
            parameters.append(f"{name}=_default_{name}")
            body.append(f"_set(self, {name!r}, {name})")
    source = (f"def __init__(self, {', '.join(parameters)}):\n    "
              + "\n    ".join(body or ["pass"]) + "\n")
    exec(source, scope)  # noqa: S102 - our own text, built from the class's field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]

    def values(self: object) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in names)

    def __eq__(self: object, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return values(self) == values(other)

    def __hash__(self: object) -> int:
        return hash(values(self))

    def __repr__(self: object) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    namespace.update(__slots__=names, __init__=init, __eq__=__eq__, __hash__=__hash__,
                     __repr__=__repr__, __setattr__=_frozen_setattr,
                     __delattr__=_frozen_delattr, __match_args__=names, _record_fields=names)
    made = type(cls)(cls.__name__, cls.__bases__, namespace)
    made.__qualname__ = cls.__qualname__
    return made  # type: ignore[return-value]


def replace(instance: T, **changes: object) -> T:
    """A copy of ``instance`` with ``changes`` to some of its fields."""
    names = type(instance)._record_fields  # type: ignore[attr-defined]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(instance).__name__} has no field {min(unknown)!r}")
    return type(instance)(**{name: changes.get(name, getattr(instance, name)) for name in names})
