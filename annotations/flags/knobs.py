"""Typed knobs: the JSON `value` a flag environment (or a variant) carries, and its `schema`.

    "environments": {"prod": {"value": 50, "schema": {"min": 1, "max": 100},
                              "variants": [{"name": "a", "weight": 1, "value": 20}]}}

A value is any JSON value but null (a null in a merge patch deletes), kept exactly: `true` is not
`1` and `1` is not `1.0`, so values are compared by their canonical JSON text. A schema is the
shorthand `{"min", "max", "enum"}` (any of the three: min and max bound a number, enum lists the
values allowed) or any other object, read as a JSON Schema (draft 2020-12 unless its `$schema`
names another) and checked as one. References are followed within the schema and to the JSON
Schema meta-schemas only; nothing is fetched. Errors are `KnobError`s naming the field (relative
to the environment) and the bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft3Validator, Draft4Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

MAX_BYTES = 65_536
MAX_DEPTH = 32
SHORTHAND = frozenset({"min", "max", "enum"})
_SHOWN = 60


class KnobError(ValueError):
    """A value or schema is invalid; `field` is relative to the environment: `variants[1].value`."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True, slots=True)
class Knob:
    """A JSON value, compared by its canonical text (keys sorted)."""

    text: str
    data: Any = field(compare=False, repr=False)

    def get(self) -> Any:
        """The value; an object or array as a fresh copy, so that changing it changes no flag."""
        return orjson.loads(self.text) if isinstance(self.data, dict | list) else self.data

    def short(self) -> str:
        return shorten(display(self.data))


def knob(raw: object, where: str) -> Knob:
    """`raw` as a Knob; KnobError naming `where` (and the part inside it) if it is not JSON."""
    _check_json(raw, where, 0)
    try:
        text = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError as error:  # ints beyond 64 bits, lone surrogates
        raise KnobError(where, f"not a JSON value: {error}") from None
    if len(text) > MAX_BYTES:
        raise KnobError(where, f"is {len(text)} bytes of JSON; at most {MAX_BYTES}")
    # Its own copy of an object or array: the caller's document may change after.
    return Knob(text, orjson.loads(text) if isinstance(raw, dict | list) else raw)


def _check_json(raw: object, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise KnobError(where, f"nests deeper than {MAX_DEPTH} levels")
    if raw is None:
        raise KnobError(where, "null is not a value (in a merge patch null deletes the key)")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise KnobError(where, f"{raw} is not a JSON number")
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            _check_json(item, f"{where}[{i}]", depth + 1)
    elif isinstance(raw, dict):
        for name, item in raw.items():
            if not isinstance(name, str):
                raise KnobError(where, f"key {name!r} is not a string")
            _check_json(item, f"{where}.{name}", depth + 1)
    elif not isinstance(raw, bool | int | float | str):
        raise KnobError(where, f"a {type(raw).__name__} is not a JSON value")


def environment_knobs(
    value: object, rules: object, variant_values: Sequence[object]
) -> tuple[Knob | None, Schema | None, tuple[Knob | None, ...]]:
    """An environment's value, schema and variants' values (None where absent), each value
    checked against the schema; KnobError names the first that is wrong."""
    own = None if value is None else knob(value, "value")
    theirs = tuple(
        None if v is None else knob(v, f"variants[{i}].value") for i, v in enumerate(variant_values)
    )
    checked = None if rules is None else schema(rules)
    if checked is not None:
        named = [("value", own), *((f"variants[{i}].value", v) for i, v in enumerate(theirs))]
        for where, each in named:
            if each is not None:
                checked.check(each, where)
    return own, checked, theirs


@dataclass(frozen=True, slots=True)
class Schema:
    """A checked schema: `check(value)` raises KnobError when the value breaks it."""

    knob: Knob
    check: Callable[[Knob, str], None] = field(compare=False, repr=False)


def schema(raw: object) -> Schema:
    """`raw` as a Schema; KnobError naming `schema` (or the part of it) if it is not one."""
    if not isinstance(raw, dict):
        raise KnobError("schema", 'must be an object: {"min", "max", "enum"} or a JSON Schema')
    return _compile(knob(raw, "schema").text)


@lru_cache(maxsize=1024)
def _compile(text: str) -> Schema:
    """Checking a schema costs more than a value; every read of a flag document meets it again."""
    doc: dict[str, Any] = orjson.loads(text)
    check = _shorthand(doc) if doc.keys() <= SHORTHAND else _json_schema(doc)
    return Schema(Knob(text, doc), check)


def _shorthand(doc: dict[str, Any]) -> Callable[[Knob, str], None]:
    low, high, allowed = doc.get("min"), doc.get("max"), doc.get("enum")
    for name, bound in (("min", low), ("max", high)):
        if bound is not None and not _is_number(bound):
            raise KnobError(f"schema.{name}", f"must be a number, not {shorten(display(bound))}")
    if low is not None and high is not None and low > high:
        raise KnobError("schema", f"min {display(low)} is above max {display(high)}")
    if allowed is not None:
        if not isinstance(allowed, list) or not allowed:
            raise KnobError("schema.enum", "must be a non-empty list of the values allowed")
        for i, item in enumerate(allowed):
            if any(same(item, other) for other in allowed[:i]):
                raise KnobError(f"schema.enum[{i}]", f"{shorten(display(item))} is listed twice")

    def check(value: Knob, where: str) -> None:
        data, shown = value.data, value.short()
        if allowed is not None and not any(same(data, item) for item in allowed):
            listed = shorten(display(allowed))
            raise KnobError(where, f"{shown} is not one of {listed} (schema.enum)")
        if (low is not None or high is not None) and not _is_number(data):
            bound = "min" if low is not None else "max"
            raise KnobError(where, f"{shown} is not a number (schema.{bound})")
        if low is not None and data < low:
            raise KnobError(where, f"{shown} is below the minimum {display(low)} (schema.min)")
        if high is not None and data > high:
            raise KnobError(where, f"{shown} is above the maximum {display(high)} (schema.max)")

    return check


def _json_schema(doc: dict[str, Any]) -> Callable[[Knob, str], None]:
    if doc.keys() & {"min", "max"}:
        raise KnobError(
            "schema",
            "min and max belong to the shorthand {min, max, enum}, which takes no other keys;"
            " a JSON Schema says minimum and maximum",
        )
    if not isinstance(doc.get("$schema", ""), str):
        raise KnobError("schema.$schema", "must be the URI of a JSON Schema draft")
    kind = validator_for(doc, default=Draft202012Validator)
    try:
        kind.check_schema(doc)
    except SchemaError as error:
        where = _path("schema", error.path)
        raise KnobError(where, f"not a JSON Schema: {error.message}") from None
    if kind in (Draft3Validator, Draft4Validator):
        _check_refs(doc, "schema")
    # An empty registry (jsonschema adds the meta-schemas to it) fetches nothing from anywhere.
    validator = kind(doc, registry=Registry())

    def check(value: Knob, where: str) -> None:
        try:
            error = best_match(validator.iter_errors(value.data))
        except Unresolvable as unresolvable:
            raise KnobError(
                "schema",
                f"cannot resolve $ref {unresolvable.ref!r}: only its own parts are followed",
            ) from None
        except RecursionError:
            raise KnobError("schema", "refers to itself without end") from None
        if error is not None:
            raise KnobError(
                _path(where, error.absolute_path),
                f"{shorten(error.message, 200)} ({_path('schema', error.absolute_schema_path)})",
            )

    return check


def _check_refs(node: object, where: str) -> None:
    """Drafts 3 and 4's meta-schemas leave `$ref` unchecked; a `$ref` that is no string would
    break the validator later."""
    if isinstance(node, dict):
        if "$ref" in node and not isinstance(node["$ref"], str):
            raise KnobError(f"{where}.$ref", "not a JSON Schema: a reference must be a string")
        for name, item in node.items():
            _check_refs(item, f"{where}.{name}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _check_refs(item, f"{where}[{i}]")


def _path(start: str, parts: Sequence[str | int] | Any) -> str:
    return start + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(a: object, b: object) -> bool:
    """JSON equality: numbers by value (1 is 1.0, as JSON Schema's enum has it), but a boolean
    is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def display(value: object) -> str:
    """JSON as people read it: `50`, `"x"`, `[10, 20, 50]`."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def shorten(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_of(value: Knob | Schema | None) -> str:
    """A short rendering for a change's summary; `(none)` when absent."""
    if value is None:
        return "(none)"
    return (value.knob if isinstance(value, Schema) else value).short()
