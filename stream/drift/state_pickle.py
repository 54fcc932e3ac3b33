"""Load the stream's pickled River state with an allow-list: data, never code.

The online challenger, the performance tracker and the score-drift detectors keep River
objects, which only pickle round-trips faithfully, in faust tables whose changelogs are
Kafka topics. A plain ``pickle.loads`` of a changelog record runs whatever callable the
record names: anyone able to write that topic could run code in every stream worker.
`loads_state` resolves only what driftline's own state holds — River and driftline
classes (classes only: calling one builds an object), a few containers from
``collections`` and ``builtins``, and numpy's array reconstruction — and refuses any
other name *before* importing its module. Kafka ACLs on the changelog topics remain
the first line of defence; this one keeps a bad record from becoming code.

Examples:
    >>> import collections, pickle
    >>> loads_state(pickle.dumps(collections.deque([1.5])))
    deque([1.5])
    >>> loads_state(pickle.dumps(print))
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: the state names builtins.print, which driftline's state never holds: not loaded (is something else writing the stream's changelog topics?)
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

__all__ = ["loads_state"]

_CLASS_PACKAGES = ("river.", "driftline.stream.drift.")
"""Modules whose *classes* state may hold (River estimators, metrics, detectors; the drift core's).
A class must also be *defined* there (its ``__module__``), not merely reachable: a dotted
name such as ``asyncio.subprocess.subprocess.Popen`` looked up from an allowed module
reaches ``subprocess.Popen``, which is a class too."""
_NAMES = {
    "builtins": {
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "object",
        "range",
        "set",
        "slice",
        "str",
        "tuple",
    },
    "collections": {"Counter", "OrderedDict", "defaultdict", "deque"},
    "copyreg": {"_reconstructor"},
    "functools": {"partial"},
    "numpy": {"dtype", "ndarray"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
}
"""Other names by module (``functools.partial`` can only wrap names allowed here)."""


class _StateUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_CLASS_PACKAGES):
            return _package_class(module, name)
        if name not in _NAMES.get(module, ()):
            raise _refused(module, name)
        return super().find_class(module, name)


def _package_class(module: str, name: str) -> type:
    """The River or drift-core class ``module.name``: nested names go through classes only, and the
    class must be defined in those packages (a name that merely reaches a class is refused)."""
    try:
        found: Any = importlib.import_module(module)
        for i, part in enumerate(name.split(".")):
            if not part.isidentifier() or part.startswith("__") or (i and not isinstance(found, type)):
                raise _refused(module, name)
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise _refused(module, name) from exc
    if not (isinstance(found, type) and f"{found.__module__}.".startswith(_CLASS_PACKAGES)):
        raise _refused(module, name)
    return found


def _refused(module: str, name: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(
        f"the state names {module}.{name}, which driftline's state never holds: not loaded "
        f"(is something else writing the stream's changelog topics?)"
    )


def loads_state(data: bytes) -> Any:
    """``pickle.loads`` for the stream's own state (see the module docstring)."""
    return _StateUnpickler(io.BytesIO(data)).load()
