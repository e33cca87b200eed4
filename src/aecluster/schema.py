"""Validation as data: every recipe value is declared once, with its type and its range.

A schema is built from small constraints (`Int(1, 100)`, `Real(0, 1)`, `Options(...)`, `Table`,
`Spec` for a named step of a registry) in the style of scikit-learn's `_parameter_constraints`.
`check(value, key)` raises `InputError` naming the key, the value and what is allowed. Tables are
closed allow-lists: a key that is not declared is refused, so nothing a recipe, a checkpoint or
`--set` holds can name a file, a folder or a callable for a library to use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aecluster.errors import InputError


class Constraint(Protocol):
    def check(self, value: Any, key: str) -> None: ...


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(key: str, value: Any, expected: object) -> None:
    raise InputError(f"{key} = {_show(value)}: expected {expected}")


def _number(lo: float, hi: float, lo_open: bool = False) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"


@dataclass(frozen=True)
class Int:
    lo: int
    hi: int

    def __str__(self) -> str:
        return f"an integer in {_number(self.lo, self.hi)}"

    def check(self, value: Any, key: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(key, value, self)
        if not self.lo <= value <= self.hi:
            _fail(key, value, self)


@dataclass(frozen=True)
class Real:
    lo: float
    hi: float
    lo_open: bool = False

    def __str__(self) -> str:
        return f"a number in {_number(self.lo, self.hi, self.lo_open)}"

    def check(self, value: Any, key: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(key, value, self)
        above_lo = value > self.lo if self.lo_open else value >= self.lo
        if not (math.isfinite(value) and above_lo and value <= self.hi):
            _fail(key, value, self)


@dataclass(frozen=True)
class Bool:
    def __str__(self) -> str:
        return "true or false"

    def check(self, value: Any, key: str) -> None:
        if not isinstance(value, bool):
            _fail(key, value, self)


@dataclass(frozen=True)
class Text:
    max_len: int = 2000

    def __str__(self) -> str:
        return f"a string of at most {self.max_len} characters"

    def check(self, value: Any, key: str) -> None:
        if not isinstance(value, str) or len(value) > self.max_len:
            _fail(key, value, self)


@dataclass(frozen=True)
class Options:
    values: tuple[str, ...]

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, value: Any, key: str) -> None:
        if not isinstance(value, str) or value not in self.values:
            _fail(key, value, self)


@dataclass(frozen=True)
class ListOf:
    item: Constraint
    min_len: int = 0
    max_len: int = 64

    def __str__(self) -> str:
        return f"a list of {self.min_len} to {self.max_len} items, each {self.item}"

    def check(self, value: Any, key: str) -> None:
        if not isinstance(value, list | tuple) or not self.min_len <= len(value) <= self.max_len:
            _fail(key, value, self)
        for i, item in enumerate(value):
            self.item.check(item, f"{key}[{i}]")


@dataclass(frozen=True)
class Bounds:
    """A [low, high] pair, each `item`, with low <= high."""

    item: Constraint

    def __str__(self) -> str:
        return f"[low, high] with low <= high, each {self.item}"

    def check(self, value: Any, key: str) -> None:
        ListOf(self.item, 2, 2).check(value, key)
        if value[0] > value[1]:
            _fail(key, value, self)


@dataclass(frozen=True)
class Rule:
    """A condition across the keys of one table, e.g. a variational model needs a bottleneck."""

    holds: Callable[[Mapping[str, Any]], bool]
    message: str


@dataclass(frozen=True)
class Table:
    """A dict with a closed set of keys, each with its constraint; missing keys are allowed
    (the defaults fill them), unknown ones are refused."""

    fields: Mapping[str, Constraint]
    rules: tuple[Rule, ...] = ()

    def __str__(self) -> str:
        return "a table with keys " + ", ".join(self.fields) if self.fields else "an empty table"

    def check(self, value: Any, key: str) -> None:
        if not isinstance(value, dict):
            _fail(key, value, self)
        for name, item in value.items():
            if name not in self.fields:
                known = ", ".join(self.fields) or "none"
                raise InputError(f"{key}: unknown key {name!r}; known: {known}")
            self.fields[name].check(item, f"{key}.{name}" if key else name)
        for rule in self.rules:
            if not rule.holds(value):
                raise InputError(f"{key}: {rule.message}")


class HasParams(Protocol):
    params: Table


@dataclass(frozen=True)
class Spec:
    """A step named from a registry, `{"name": ..., **params}` (or its params under
    `params_key`), whose parameters are checked against that entry's own `params` table."""

    registry: Mapping[str, HasParams]
    params_key: str | None = None
    kind: str = "step"

    def __str__(self) -> str:
        return "a table naming one of " + ", ".join(repr(n) for n in sorted(self.registry))

    def check(self, value: Any, key: str) -> None:
        if not isinstance(value, dict):
            _fail(key, value, self)
        name = value.get("name")
        if not isinstance(name, str) or name not in self.registry:
            known = ", ".join(sorted(self.registry))
            raise InputError(f"{key}: unknown {self.kind} {_show(name)}; known: {known}")
        schema = self.registry[name].params
        if self.params_key is None:
            schema.check({k: v for k, v in value.items() if k != "name"}, f"{key}[{name}]")
            return
        Table({"name": Text(), self.params_key: schema}).check(value, key)


@dataclass(frozen=True)
class Named:
    """A table whose keys name registry entries, each mapped to that entry's params,
    e.g. augmentations: `{crop = {scale = [0.2, 1.0]}, grayscale = {}}`."""

    registry: Mapping[str, HasParams]

    def __str__(self) -> str:
        return "a table whose keys are among " + ", ".join(sorted(self.registry))

    def check(self, value: Any, key: str) -> None:
        Table({name: entry.params for name, entry in self.registry.items()}).check(value, key)


def check_params(entry: HasParams, params: Mapping[str, Any], where: str) -> None:
    """Check a step's parameters against its declared table before it is built."""
    entry.params.check(dict(params), where)
