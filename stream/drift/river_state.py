"""An explicit, versioned JSON format for the few River objects the stream's state holds.

Why: the online challenger's, the performance tracker's and the score-drift detectors'
state lives in a changelogged table (a Kafka topic); the challenger's also travels to the
trainer in retrain requests. Unpickling what a topic holds runs whatever callable
the record names; an allow-list narrows that and one bypass of it is already known. This
format is data only. Each supported class has a fixed reader that builds exactly that
class from validated fields. Nothing is looked up or imported by name, and an unknown
``kind`` is an error. Each writer also checks that the object holds no attribute it does
not know, so a River upgrade that adds learning state fails here loudly instead of being
silently dropped.

Supported, exact classes only (subclasses are refused):

- ``compose.Pipeline``: ``preprocessing.StandardScaler`` steps (``window_size=None``), then one
  final estimator;
- ``linear_model.LogisticRegression`` (``optim.losses.Log``) and ``linear_model.LinearRegression``
  (``optim.losses.Squared``), with ``optim.SGD`` and constant learning rates
  (``optim.schedulers.Constant``), ``Zeros``/``Constant`` initializers and no L1 penalty;
- ``multiclass.OneVsRestClassifier`` of ``LogisticRegression``;
- metrics ``Accuracy``, ``F1`` (``beta`` 1), ``LogLoss``, ``CrossEntropy``, ``MacroF1``, ``MAE``, ``RMSE``;
- the drift detector ``drift.ADWIN``, whose window is a Rust object: see ``adwin_state``.

Anything else raises ``ValueError``. A record that fails validation does too: a wrong type,
a value out of range, a missing or unknown field, or a size over the ``MAX_*`` limits.

Exactness: floats are JSON numbers, which round-trip exactly (shortest repr). JSON has no
NaN or infinity, so learned values that diverged are written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``. Hyper-parameters must be finite. Feature names (str)
are JSON object keys and keep their original order: a dot product sums in feature order,
so that order is part of exactness. Class labels (str, int, float, bool or None) go in
``[label, value]`` pair lists, because JSON keys can only be strings.

Examples:
    >>> import orjson
    >>> from river import linear_model, preprocessing
    >>> model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    >>> for i in range(50):
    ...     model.learn_one({"x": float(i % 5)}, i % 5 > 2)
    >>> again = load_pipeline(orjson.loads(orjson.dumps(dump_pipeline(model))))
    >>> again.predict_proba_one({"x": 4.0}) == model.predict_proba_one({"x": 4.0})
    True
    >>> dump_pipeline(preprocessing.MinMaxScaler() | linear_model.LinearRegression())
    Traceback (most recent call last):
    ...
    ValueError: river state: steps[0]: unsupported river.preprocessing.scale.MinMaxScaler (...)
    >>> load_pipeline({"format": "driftline.river-state", "v": 1, "kind": "os.system", "steps": []})
    Traceback (most recent call last):
    ...
    ValueError: river state: pipeline: unknown kind 'os.system' (expected 'Pipeline')
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Callable, Sized
from typing import Any, cast

from river import compose, linear_model, metrics, multiclass, optim, preprocessing, stats, utils

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_CELLS",
    "MAX_CLASSES",
    "MAX_FEATURES",
    "MAX_NAME",
    "MAX_STEPS",
    "dump_metric",
    "dump_pipeline",
    "load_metric",
    "load_pipeline",
]

FORMAT = "driftline.river-state"
FORMAT_VERSION = 1
MAX_FEATURES = 1_000_000
"""Entries in one feature-keyed map (weights, scaler statistics)."""
MAX_CLASSES = 10_000
"""Class labels in a one-vs-rest model or in one axis of a confusion matrix."""
MAX_CELLS = 1_000_000
"""Cells in one confusion matrix."""
MAX_STEPS = 16
"""Steps in a pipeline."""
MAX_NAME = 10_000
"""Characters in a feature name, string class label or step name."""

_INT_LIMIT = 2**63  # ints must fit int64: what JSON parsers (orjson) carry exactly
_LABEL_INT_LIMIT = 2**64  # labels came in as JSON: orjson also reads unsigned 64-bit integers
_TOKENS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_PAIRS = (list, tuple)
_SUPPORTED = (
    "Pipeline of StandardScaler steps and a final LogisticRegression, LinearRegression "
    "or OneVsRestClassifier(LogisticRegression); metrics Accuracy, F1, LogLoss, CrossEntropy, MacroF1, MAE, RMSE"
)

Doc = dict[str, Any]


# -- validation primitives, shared by writers and readers (what is written can be read) ------


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"river state: {where}: {message}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unsupported(obj: Any, where: str, why: str = "") -> ValueError:
    cls = type(obj)
    detail = why or f"this format holds only: {_SUPPORTED}"
    return _fail(where, f"unsupported {cls.__module__}.{cls.__qualname__} ({detail})")


def _attrs(obj: Any, expected: frozenset[str], where: str) -> None:
    """Refuse an object holding attributes this format does not know (new River state)."""
    found = set(vars(obj))
    if found != expected:
        raise _unsupported(
            obj,
            where,
            f"attributes {sorted(found ^ expected)} differ from the ones this "
            "format knows: a River version with other state?",
        )


def _num(
    value: Any,
    where: str,
    *,
    finite: bool = True,
    integer: bool = False,
    lo: float | None = None,
    lo_open: bool = False,
) -> int | float:
    """A number (int or float, never bool) checked for type and range; int/float type is kept.

    ``finite=False`` also accepts NaN and ±inf, written as the strings in ``_TOKENS``.
    """
    if isinstance(value, str) and value in _TOKENS and not integer:
        if finite:
            raise _fail(where, f"expected a finite number, got {value!r}")
        value = _TOKENS[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise _fail(where, f"expected {'an integer' if integer else 'a number'}, got {_short(value)}")
    if isinstance(value, int):
        value = int(value)
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise _fail(where, f"integer of {value.bit_length()} bits, out of the int64 range")
    else:
        value = float(value)
        if finite and not math.isfinite(value):
            raise _fail(where, f"expected a finite number, got {value!r}")
    if lo is not None and not math.isnan(value) and (value < lo or (lo_open and value == lo)):
        raise _fail(where, f"{value!r} out of range (must be {'>' if lo_open else '>='} {lo!r})")
    return value


def _enc(value: float) -> float | str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string name, got {_short(value)}")
    if len(value) > MAX_NAME:
        raise _fail(where, f"name of {len(value)} characters, more than {MAX_NAME}")
    return value


def _label(value: Any, where: str) -> Any:
    """A class label: str, int, float (finite), bool or None; the exact JSON scalars."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _name(value, where)
    if type(value) is int and _INT_LIMIT <= value < _LABEL_INT_LIMIT:
        return value
    if isinstance(value, (int, float)):
        return _num(value, where)
    raise _fail(where, f"unsupported class label {_short(value)} (str, int, float, bool or None only)")


def _size(value: Any, where: str, kind: type, limit: int) -> None:
    if not isinstance(value, kind):
        raise _fail(where, f"expected {'an object' if kind is dict else 'a list'}, got {_short(value)}")
    size = len(cast(Sized, value))
    if size > limit:
        raise _fail(where, f"{size} entries, more than the {limit} this format accepts")


def _feature_map(
    value: Any, where: str, check: Callable[[Any, str], Any], plain: Callable[[Any], bool] | None = None
) -> dict[str, Any]:
    """``{feature name: check(value)}`` in the original order.

    ``plain(v)`` true means ``check`` returns ``v`` itself: when it holds for every value
    (the common case) the map is copied without a call per entry, which keeps a save cheap.
    """
    _size(value, where, dict, MAX_FEATURES)
    if plain is not None and all(type(k) is str and len(k) <= MAX_NAME and plain(v) for k, v in value.items()):
        return dict(value)
    return {_name(k, f"{where} key"): check(v, f"{where}[{k!r:.60}]") for k, v in value.items()}


def _plain_float(v: Any) -> bool:
    return type(v) is float and -math.inf < v < math.inf


def _plain_var(v: Any) -> bool:
    return type(v) is float and 0.0 <= v < math.inf


def _plain_count(v: Any) -> bool:
    return type(v) is int and 1 <= v < _INT_LIMIT


def _plain_label(v: Any) -> bool:
    """``_label(v)`` would return ``v`` itself (a fast path's test)."""
    t = type(v)
    return (
        v is None
        or t is bool
        or (t is str and len(v) <= MAX_NAME)
        or (t is int and -_INT_LIMIT <= v < _LABEL_INT_LIMIT)
        or (t is float and -math.inf < v < math.inf)
    )


def _plain_finite(v: Any) -> bool:
    """``_finite(v)`` would return ``v`` itself."""
    return (type(v) is float and -math.inf < v < math.inf) or (type(v) is int and -_INT_LIMIT <= v < _INT_LIMIT)


def _label_pairs(
    value: Any,
    where: str,
    check: Callable[[Any, str], Any],
    limit: int = MAX_CLASSES,
    plain: Callable[[Any], bool] | None = None,
) -> dict[Any, Any]:
    """``[[label, value], ...]`` → ``{label: check(value)}`` in order; a repeated label is refused.

    ``plain(v)`` true means ``check`` returns ``v`` itself: when it and ``_plain_label`` hold for
    every pair, the map is built without a call per entry (a confusion matrix per save and load).
    """
    _size(value, where, list, limit)
    if plain is not None and all(
        type(p) in _PAIRS and len(p) == 2 and _plain_label(p[0]) and plain(p[1]) for p in value
    ):
        fast = {p[0]: p[1] for p in value}
        if len(fast) == len(value):
            return fast
    out: dict[Any, Any] = {}
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _fail(f"{where}[{i}]", f"expected a [label, value] pair, got {_short(pair)}")
        label = _label(pair[0], f"{where}[{i}] label")
        if label in out:
            raise _fail(f"{where}[{i}]", f"label {label!r} repeated (or equal to an earlier one)")
        out[label] = check(pair[1], f"{where}[{label!r:.60}]")
    return out


def _pairs_out(
    mapping: dict[Any, Any],
    where: str,
    check: Callable[[Any, str], Any],
    limit: int = MAX_CLASSES,
    plain: Callable[[Any], bool] | None = None,
) -> list[list[Any]]:
    if len(mapping) > limit:
        raise _fail(where, f"{len(mapping)} entries, more than the {limit} this format accepts")
    if plain is not None and all(_plain_label(k) and plain(v) for k, v in mapping.items()):
        return [[k, v] for k, v in mapping.items()]  # what the checks below would return, without a call each
    return [[_label(k, f"{where} label"), check(v, f"{where}[{k!r:.60}]")] for k, v in mapping.items()]


def _fields(doc: Any, where: str, kind: str, keys: frozenset[str]) -> Doc:
    """``doc`` as an object of exactly ``kind`` with exactly ``keys`` (besides ``kind``)."""
    if not isinstance(doc, dict):
        raise _fail(where, f"expected an object, got {_short(doc)}")
    if doc.get("kind") != kind:
        raise _fail(where, f"unknown kind {_short(doc.get('kind'))} (expected {kind!r})")
    found = set(doc) - {"kind"}
    if found != keys:
        raise _fail(where, f"fields {sorted(map(str, found ^ keys))} missing or unknown for {kind}")
    return doc


def _kind(doc: Any, where: str, known: dict[str, Any]) -> Any:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if not isinstance(kind, str) or kind not in known:
        raise _fail(where, f"unknown kind {_short(kind)} (expected one of {sorted(known)})")
    return known[kind]


def _finite(v: Any, where: str) -> int | float:
    return _num(v, where)


def _learned(v: Any, where: str) -> int | float | str:
    """A learned value: may have diverged to NaN/±inf."""
    return _enc(_num(v, where, finite=False))


def _nonneg(v: Any, where: str) -> int | float:
    return _num(v, where, lo=0.0)


# -- optimizer pieces -----------------------------------------------------------------------

_CONSTANT = frozenset({"learning_rate"})


def _dump_schedule(s: Any, where: str) -> Doc:
    if type(s) is not optim.schedulers.Constant:
        raise _unsupported(s, where, "only optim.schedulers.Constant learning rates")
    _attrs(s, _CONSTANT, where)
    return {"kind": "Constant", "learning_rate": _nonneg(s.learning_rate, f"{where}.learning_rate")}


def _load_schedule(doc: Any, where: str) -> optim.schedulers.Constant:
    d = _fields(doc, where, "Constant", _CONSTANT)
    return optim.schedulers.Constant(_nonneg(d["learning_rate"], f"{where}.learning_rate"))


_SGD = frozenset({"lr", "n_iterations"})


def _dump_sgd(o: Any, where: str) -> Doc:
    if type(o) is not optim.SGD:
        raise _unsupported(o, where, "only plain optim.SGD")
    _attrs(o, _SGD, where)
    return {
        "kind": "SGD",
        "lr": _dump_schedule(o.lr, f"{where}.lr"),
        "n_iterations": _num(o.n_iterations, f"{where}.n_iterations", integer=True, lo=0),
    }


def _load_sgd(doc: Any, where: str) -> optim.SGD:
    d = _fields(doc, where, "SGD", _SGD)
    o = optim.SGD(_load_schedule(d["lr"], f"{where}.lr"))
    o.n_iterations = int(_num(d["n_iterations"], f"{where}.n_iterations", integer=True, lo=0))
    return o


_LOG = frozenset({"weight_pos", "weight_neg"})


def _dump_loss(loss: Any, where: str, expected: type) -> Doc:
    if type(loss) is not expected:
        raise _unsupported(loss, where, f"this model's loss must be optim.losses.{expected.__name__}")
    if expected is optim.losses.Log:
        _attrs(loss, _LOG, where)
        return {
            "kind": "Log",
            "weight_pos": _nonneg(getattr(loss, "weight_pos"), f"{where}.weight_pos"),  # noqa: B009
            "weight_neg": _nonneg(getattr(loss, "weight_neg"), f"{where}.weight_neg"),  # noqa: B009
        }
    _attrs(loss, frozenset(), where)
    return {"kind": "Squared"}


def _load_loss(doc: Any, where: str, expected: type) -> Any:
    if expected is optim.losses.Log:
        d = _fields(doc, where, "Log", _LOG)
        return optim.losses.Log(
            weight_pos=_nonneg(d["weight_pos"], f"{where}.weight_pos"),
            weight_neg=_nonneg(d["weight_neg"], f"{where}.weight_neg"),
        )
    _fields(doc, where, "Squared", frozenset())
    return optim.losses.Squared()


_VALUE = frozenset({"value"})


def _dump_initializer(init: Any, where: str) -> Doc:
    if type(init) is optim.initializers.Zeros:
        _attrs(init, _VALUE, where)
        if not (type(init.value) is float and init.value == 0.0):
            raise _unsupported(init, where, f"a Zeros initializer holding {init.value!r}")
        return {"kind": "Zeros"}
    if type(init) is optim.initializers.Constant:
        _attrs(init, _VALUE, where)
        return {"kind": "Constant", "value": _finite(init.value, f"{where}.value")}
    raise _unsupported(init, where, "only Zeros or Constant initializers")


def _load_initializer(doc: Any, where: str) -> Any:
    if isinstance(doc, dict) and doc.get("kind") == "Zeros":
        _fields(doc, where, "Zeros", frozenset())
        return optim.initializers.Zeros()
    d = _fields(doc, where, "Constant", _VALUE)
    return optim.initializers.Constant(_finite(d["value"], f"{where}.value"))


# -- estimators ---------------------------------------------------------------------------

_GLM_ATTRS = frozenset(
    {
        "optimizer",
        "loss",
        "l2",
        "l1",
        "intercept_init",
        "intercept",
        "intercept_lr",
        "clip_gradient",
        "initializer",
        "_weights",
        "_y_name",
    }
)
# ``_y_name`` only names the Series that ``predict_many`` returns: no learning state.
_GLM_FIELDS = frozenset(
    {
        "optimizer",
        "loss",
        "l2",
        "l1",
        "intercept_init",
        "intercept",
        "intercept_lr",
        "clip_gradient",
        "initializer",
        "weights",
    }
)
_GLMS: dict[type, type] = {
    linear_model.LogisticRegression: optim.losses.Log,
    linear_model.LinearRegression: optim.losses.Squared,
}


def _no_l1(v: Any, where: str) -> int | float:
    value = _finite(v, where)
    if value != 0:
        raise _fail(where, f"unsupported L1 penalty {value!r} (its cumulative-penalty state is not in this format)")
    return value


def _dump_glm(m: Any, where: str) -> Doc:
    _no_l1(getattr(m, "l1", 0.0), f"{where}.l1")  # before the attribute check: L1 adds state
    _attrs(m, _GLM_ATTRS, where)
    return {
        "kind": type(m).__name__,
        "optimizer": _dump_sgd(m.optimizer, f"{where}.optimizer"),
        "loss": _dump_loss(m.loss, f"{where}.loss", _GLMS[type(m)]),
        "l2": _nonneg(m.l2, f"{where}.l2"),
        "l1": _no_l1(m.l1, f"{where}.l1"),
        "intercept_init": _finite(m.intercept_init, f"{where}.intercept_init"),
        "intercept": _learned(m.intercept, f"{where}.intercept"),
        "intercept_lr": _dump_schedule(m.intercept_lr, f"{where}.intercept_lr"),
        "clip_gradient": _num(m.clip_gradient, f"{where}.clip_gradient", lo=0.0, lo_open=True),
        "initializer": _dump_initializer(m.initializer, f"{where}.initializer"),
        "weights": _feature_map(m._weights.to_dict(), f"{where}.weights", _learned, _plain_float),
    }


def _load_glm(doc: Any, where: str, cls: type) -> Any:
    d = _fields(doc, where, cls.__name__, _GLM_FIELDS)
    m = cls(
        optimizer=_load_sgd(d["optimizer"], f"{where}.optimizer"),
        loss=_load_loss(d["loss"], f"{where}.loss", _GLMS[cls]),
        l2=_nonneg(d["l2"], f"{where}.l2"),
        l1=_no_l1(d["l1"], f"{where}.l1"),
        intercept_init=_finite(d["intercept_init"], f"{where}.intercept_init"),
        intercept_lr=_load_schedule(d["intercept_lr"], f"{where}.intercept_lr"),
        clip_gradient=_num(d["clip_gradient"], f"{where}.clip_gradient", lo=0.0, lo_open=True),
        initializer=_load_initializer(d["initializer"], f"{where}.initializer"),
    )
    m.intercept = _num(d["intercept"], f"{where}.intercept", finite=False)
    m._weights = utils.VectorDict(
        _feature_map(d["weights"], f"{where}.weights", functools.partial(_num, finite=False), _plain_float)
    )
    return m


_OVR_ATTRS = frozenset({"classifier", "classifiers", "_y_name"})
_OVR_FIELDS = frozenset({"classifier", "classifiers"})
_LOGREG = linear_model.LogisticRegression


def _dump_logreg(m: Any, where: str) -> Doc:
    if type(m) is not _LOGREG:
        raise _unsupported(m, where, "a OneVsRestClassifier must wrap a LogisticRegression")
    return _dump_glm(m, where)


def _dump_ovr(m: Any, where: str) -> Doc:
    _attrs(m, _OVR_ATTRS, where)
    if type(m.classifiers) is not dict:
        raise _unsupported(m.classifiers, f"{where}.classifiers", "expected a dict of classifiers")
    return {
        "kind": "OneVsRestClassifier",
        "classifier": _dump_logreg(m.classifier, f"{where}.classifier"),
        "classifiers": _pairs_out(m.classifiers, f"{where}.classifiers", _dump_logreg),
    }


def _load_ovr(doc: Any, where: str) -> multiclass.OneVsRestClassifier:
    d = _fields(doc, where, "OneVsRestClassifier", _OVR_FIELDS)
    m = multiclass.OneVsRestClassifier(_load_glm(d["classifier"], f"{where}.classifier", _LOGREG))
    m.classifiers = _label_pairs(d["classifiers"], f"{where}.classifiers", functools.partial(_load_glm, cls=_LOGREG))
    return m


_SCALER_ATTRS = frozenset({"with_std", "window_size", "counts", "means", "vars"})
_SCALER_FIELDS = frozenset({"with_std", "counts", "means", "vars"})


def _count(v: Any, where: str) -> int | float:
    return _num(v, where, integer=True, lo=1)


def _var(v: Any, where: str) -> int | float | str:
    return _enc(_num(v, where, finite=False, lo=0.0))  # a negative variance has a complex root


def _dump_scaler(s: Any, where: str) -> Doc:
    _attrs(s, _SCALER_ATTRS, where)
    if s.window_size is not None:
        raise _unsupported(s, where, "a rolling-window StandardScaler")
    if type(s.counts) is not collections.Counter:
        raise _unsupported(s.counts, f"{where}.counts", "expected a Counter")
    for part in ("means", "vars"):
        table = getattr(s, part)
        if type(table) is not collections.defaultdict or table.default_factory is not float:
            raise _unsupported(table, f"{where}.{part}", "expected a defaultdict(float)")
    if type(s.with_std) is not bool:
        raise _fail(f"{where}.with_std", f"expected a bool, got {_short(s.with_std)}")
    # ``means``/``vars`` may hold keys ``counts`` lacks: transform_one adds unseen features.
    return {
        "kind": "StandardScaler",
        "with_std": s.with_std,
        "counts": _feature_map(s.counts, f"{where}.counts", _count, _plain_count),
        "means": _feature_map(s.means, f"{where}.means", _learned, _plain_float),
        "vars": _feature_map(s.vars, f"{where}.vars", _var, _plain_var),
    }


def _load_scaler(doc: Any, where: str) -> preprocessing.StandardScaler:
    d = _fields(doc, where, "StandardScaler", _SCALER_FIELDS)
    if type(d["with_std"]) is not bool:
        raise _fail(f"{where}.with_std", f"expected a bool, got {_short(d['with_std'])}")
    s = preprocessing.StandardScaler(with_std=d["with_std"])
    s.counts.update(_feature_map(d["counts"], f"{where}.counts", _count, _plain_count))
    s.means.update(_feature_map(d["means"], f"{where}.means", functools.partial(_num, finite=False), _plain_float))
    s.vars.update(_feature_map(d["vars"], f"{where}.vars", functools.partial(_num, finite=False, lo=0.0), _plain_var))
    return s


_TRANSFORM_WRITERS: dict[type, Callable[[Any, str], Doc]] = {preprocessing.StandardScaler: _dump_scaler}
_FINAL_WRITERS: dict[type, Callable[[Any, str], Doc]] = {
    linear_model.LogisticRegression: _dump_glm,
    linear_model.LinearRegression: _dump_glm,
    multiclass.OneVsRestClassifier: _dump_ovr,
}
_TRANSFORM_READERS: dict[str, Callable[[Any, str], Any]] = {"StandardScaler": _load_scaler}
_FINAL_READERS: dict[str, Callable[[Any, str], Any]] = {
    "LogisticRegression": functools.partial(_load_glm, cls=linear_model.LogisticRegression),
    "LinearRegression": functools.partial(_load_glm, cls=linear_model.LinearRegression),
    "OneVsRestClassifier": _load_ovr,
}
_STEP_FIELDS = frozenset({"name", "estimator"})
_TOP_FIELDS = frozenset({"format", "v"})


def _header(doc: Any, where: str, kind: str | None, keys: frozenset[str]) -> Doc:
    if not isinstance(doc, dict):
        raise _fail(where, f"expected an object, got {_short(doc)}")
    if doc.get("format") != FORMAT:
        raise _fail(where, f"format {_short(doc.get('format'))} is not {FORMAT!r}")
    if doc.get("v") != FORMAT_VERSION or isinstance(doc.get("v"), bool):
        raise _fail(where, f"unknown format version {_short(doc.get('v'))} (this reads {FORMAT_VERSION})")
    if kind is not None:
        return _fields(doc, where, kind, keys | _TOP_FIELDS)
    return doc


def dump_pipeline(model: compose.Pipeline) -> Doc:
    """``model``'s full learning state as a JSON-able dict; ``ValueError`` if anything is unsupported."""
    if type(model) is not compose.Pipeline:
        raise _unsupported(model, "pipeline", f"expected a compose.Pipeline; {_SUPPORTED}")
    steps = list(model.steps.items())
    if not 1 <= len(steps) <= MAX_STEPS:
        raise _fail("pipeline", f"{len(steps)} steps (1 to {MAX_STEPS} supported)")
    out = []
    for i, (name, step) in enumerate(steps):
        where = f"steps[{i}]"
        writers = _FINAL_WRITERS if i == len(steps) - 1 else _TRANSFORM_WRITERS
        writer = writers.get(type(step))
        if writer is None:
            raise _unsupported(step, where)
        out.append({"name": _name(name, f"{where}.name"), "estimator": writer(step, where)})
    return {"format": FORMAT, "v": FORMAT_VERSION, "kind": "Pipeline", "steps": out}


def load_pipeline(doc: Any) -> compose.Pipeline:
    """The ``compose.Pipeline`` that ``doc`` (from ``dump_pipeline``) describes; ``ValueError`` if invalid."""
    if isinstance(doc, dict) and doc.get("kind") != "Pipeline":
        raise _fail("pipeline", f"unknown kind {_short(doc.get('kind'))} (expected 'Pipeline')")
    d = _header(doc, "pipeline", "Pipeline", frozenset({"steps"}))
    _size(d["steps"], "pipeline.steps", list, MAX_STEPS)
    if not d["steps"]:
        raise _fail("pipeline.steps", "no steps")
    steps: dict[str, Any] = {}
    for i, step in enumerate(d["steps"]):
        where = f"steps[{i}]"
        if not isinstance(step, dict) or set(step) != _STEP_FIELDS:
            raise _fail(where, f"expected an object with fields {sorted(_STEP_FIELDS)}, got {_short(step)}")
        name = _name(step["name"], f"{where}.name")
        if name in steps:
            raise _fail(f"{where}.name", f"step name {name!r} repeated")
        readers = _FINAL_READERS if i == len(d["steps"]) - 1 else _TRANSFORM_READERS
        steps[name] = _kind(step["estimator"], where, readers)(step["estimator"], where)
    return compose.Pipeline(*steps.items())


# -- metrics ------------------------------------------------------------------------------

_CM_ATTRS = frozenset(
    {"_init_classes", "sum_row", "sum_col", "data", "n_samples", "total_weight", "_total_true_positives"}
)
_CM_FIELDS = frozenset({"classes", "sum_row", "sum_col", "data", "n_samples", "total_weight", "total_true_positives"})


def _is_float_dd(table: Any) -> bool:
    return type(table) is collections.defaultdict and table.default_factory is float


def _dump_cm(cm: Any, where: str) -> Doc:
    if type(cm) is not metrics.ConfusionMatrix:
        raise _unsupported(cm, where, "expected a metrics.ConfusionMatrix")
    _attrs(cm, _CM_ATTRS, where)
    rows = cm.data
    if not (
        _is_float_dd(cm.sum_row)
        and _is_float_dd(cm.sum_col)
        and type(rows) is collections.defaultdict
        and all(_is_float_dd(row) for row in rows.values())
    ):
        raise _unsupported(cm, where, "confusion-matrix tables are not defaultdicts of floats")
    if sum(len(row) for row in rows.values()) > MAX_CELLS:
        raise _fail(f"{where}.data", f"more than {MAX_CELLS} cells")
    return {
        "classes": [_label(c, f"{where}.classes") for c in _list(list(cm._init_classes), f"{where}.classes")],
        "sum_row": _pairs_out(cm.sum_row, f"{where}.sum_row", _finite, plain=_plain_finite),
        "sum_col": _pairs_out(cm.sum_col, f"{where}.sum_col", _finite, plain=_plain_finite),
        "data": _pairs_out(rows, f"{where}.data", lambda row, w: _pairs_out(row, w, _finite, plain=_plain_finite)),
        "n_samples": _num(cm.n_samples, f"{where}.n_samples", integer=True, lo=0),
        "total_weight": _finite(cm.total_weight, f"{where}.total_weight"),
        "total_true_positives": _finite(cm._total_true_positives, f"{where}.total_true_positives"),
    }


def _load_cm(doc: Any, where: str) -> metrics.ConfusionMatrix:
    if not isinstance(doc, dict) or set(doc) != _CM_FIELDS:
        raise _fail(where, f"expected an object with fields {sorted(_CM_FIELDS)}, got {_short(doc)}")
    classes = _label_pairs(
        [[c, None] for c in _list(doc["classes"], f"{where}.classes")], f"{where}.classes", lambda v, w: v
    )
    cm = metrics.ConfusionMatrix(classes=list(classes) or None)
    cm.sum_row.update(_label_pairs(doc["sum_row"], f"{where}.sum_row", _finite, plain=_plain_finite))
    cm.sum_col.update(_label_pairs(doc["sum_col"], f"{where}.sum_col", _finite, plain=_plain_finite))
    cells = 0

    def row(value: Any, w: str) -> dict[Any, Any]:
        nonlocal cells
        out = _label_pairs(value, w, _finite, plain=_plain_finite)
        cells += len(out)
        if cells > MAX_CELLS:
            raise _fail(f"{where}.data", f"more than {MAX_CELLS} cells")
        return out

    for y_true, by_pred in _label_pairs(doc["data"], f"{where}.data", row).items():
        cm.data[y_true].update(by_pred)
    cm.n_samples = _num(doc["n_samples"], f"{where}.n_samples", integer=True, lo=0)
    cm.total_weight = _finite(doc["total_weight"], f"{where}.total_weight")
    cm._total_true_positives = _finite(doc["total_true_positives"], f"{where}.total_true_positives")
    return cm


def _list(value: Any, where: str) -> list[Any]:
    _size(value, where, list, MAX_CLASSES)
    return value


_MEAN_FIELDS = frozenset({"n", "mean"})


def _dump_mean(m: Any, where: str) -> Doc:
    if type(m) is not stats.Mean:
        raise _unsupported(m, where, "expected a stats.Mean")
    _attrs(m, frozenset({"n", "_mean"}), where)
    return {"n": _nonneg(m.n, f"{where}.n"), "mean": _learned(m._mean, f"{where}.mean")}


def _load_mean(doc: Any, where: str) -> stats.Mean:
    if not isinstance(doc, dict) or set(doc) != _MEAN_FIELDS:
        raise _fail(where, f"expected an object with fields {sorted(_MEAN_FIELDS)}, got {_short(doc)}")
    m = stats.Mean()
    m.n = _nonneg(doc["n"], f"{where}.n")
    m._mean = _num(doc["mean"], f"{where}.mean", finite=False)
    return m


_CM_METRICS: dict[type, frozenset[str]] = {
    metrics.Accuracy: frozenset({"cm"}),
    metrics.MacroF1: frozenset({"cm", "beta"}),
}
_MEAN_METRICS = (metrics.LogLoss, metrics.CrossEntropy, metrics.MAE, metrics.RMSE)
_METRICS: dict[str, type] = {cls.__name__: cls for cls in (*_CM_METRICS, metrics.F1, *_MEAN_METRICS)}
_F1_ATTRS = frozenset({"cm", "pos_val", "_requires_labels", "beta", "precision", "recall"})
_F1_PARTS = {"precision": metrics.Precision, "recall": metrics.Recall}
_F1_PART_ATTRS = frozenset({"cm", "pos_val", "_requires_labels"})


def _dump_f1(metric: Any) -> Doc:
    """An ``F1``: its confusion matrix and positive class; the precision and recall it holds must
    share both (as ``F1.__init__`` builds them), so the reader rebuilds them by that constructor."""
    _attrs(metric, _F1_ATTRS, "metric")
    if not (type(metric.beta) is float and metric.beta == 1.0) or metric._requires_labels is not True:
        raise _unsupported(metric, "metric", f"an F1 with beta {metric.beta!r}, labels {metric._requires_labels!r}")
    for name, cls in _F1_PARTS.items():
        part = getattr(metric, name)
        if type(part) is not cls:
            raise _unsupported(part, f"metric.{name}", f"expected a metrics.{cls.__name__}")
        _attrs(part, _F1_PART_ATTRS, f"metric.{name}")
        if part.cm is not metric.cm or part.pos_val is not metric.pos_val or part._requires_labels is not True:
            raise _unsupported(metric, "metric", f"an F1 whose {name} has its own confusion matrix or positive class")
    return {"cm": _dump_cm(metric.cm, "metric.cm"), "pos_val": _label(metric.pos_val, "metric.pos_val")}


def dump_metric(metric: Any) -> Doc:
    """``metric``'s running state as a JSON-able dict; ``ValueError`` if the metric is unsupported."""
    cls = type(metric)
    if cls in _CM_METRICS:
        _attrs(metric, _CM_METRICS[cls], "metric")
        if cls is metrics.MacroF1 and not (type(metric.beta) is float and metric.beta == 1.0):
            raise _unsupported(metric, "metric", f"a MacroF1 with beta {metric.beta!r}")
        body: Doc = {"cm": _dump_cm(metric.cm, "metric.cm")}
    elif cls is metrics.F1:
        body = _dump_f1(metric)
    elif cls in _MEAN_METRICS:
        _attrs(metric, frozenset({"_mean"}), "metric")
        body = {"mean": _dump_mean(metric._mean, "metric.mean")}
    else:
        raise _unsupported(metric, "metric", f"metrics supported: {sorted(_METRICS)}")
    return {"format": FORMAT, "v": FORMAT_VERSION, "kind": cls.__name__, **body}


def load_metric(doc: Any) -> Any:
    """The River metric that ``doc`` (from ``dump_metric``) describes; ``ValueError`` if invalid."""
    cls = _kind(doc, "metric", _METRICS)
    if cls in _CM_METRICS:
        d = _header(doc, "metric", cls.__name__, frozenset({"cm"}))
        metric = cls(cm=_load_cm(d["cm"], "metric.cm"))
    elif cls is metrics.F1:
        d = _header(doc, "metric", "F1", frozenset({"cm", "pos_val"}))
        metric = metrics.F1(cm=_load_cm(d["cm"], "metric.cm"), pos_val=_label(d["pos_val"], "metric.pos_val"))
    else:
        d = _header(doc, "metric", cls.__name__, frozenset({"mean"}))
        metric = cls()
        metric._mean = _load_mean(d["mean"], "metric.mean")
    return metric
