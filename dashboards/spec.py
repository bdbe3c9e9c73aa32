"""Dashboards as code: YAML files read into frozen specs, every mistake named by file and line."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import yaml

from aggregator.counters import COUNTER_AGGREGATES
from aggregator.rollups import AGGREGATES
from aggregator.sketch_rollups import percentile
from dashboards.errors import SpecError
from storage.records import NS_PER_MS
from storage.timeparse import parse_duration_ns

KINDS = ("deploy", "flag", "note", "alert")
UNITS = ("", "percent", "bytes", "bytes/s", "ms", "s", "req/s", "ops/s", "count")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VARIABLE = re.compile(r"^\$([a-z_][a-z0-9_]*)$")
AGG_HELP = (
    f"use one of {', '.join((*AGGREGATES, *COUNTER_AGGREGATES))} or a percentile pNN or pNN.N"
    " above p0 and at most p100, such as p50, p99 or p99.9 (of a StatsD timer's base name, from"
    " its sketches)"
)
RESERVED = frozenset({"from", "to", "kiosk", "playlist", "rotate", "refresh", "points"})
"""URL query keys of a view, so no variable may take these names."""


@dataclass(frozen=True, slots=True)
class Overlay:
    """Which annotations a panel draws: a kind, and tags they must carry (`$var` allowed)."""

    kind: str
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Threshold:
    value: float
    color: str


@dataclass(frozen=True, slots=True)
class Source:
    """One more query a panel draws beside its own (the same thing measured by another agent):
    `scale * metric / ratio_of + offset` per group and step bucket, `ratio_of` optional."""

    metric: str
    tags: tuple[tuple[str, str], ...]
    agg: str
    group_by: tuple[str, ...]
    ratio_of: Source | None = None
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class Panel:
    """One graph: a query (tag values may be `$var`), a unit, thresholds and overlays, and a
    description shown when hovering its title (what the numbers are, how they are computed);
    `also` are the other queries it draws, whose series join its own."""

    id: str
    title: str
    metric: str
    tags: tuple[tuple[str, str], ...]
    agg: str
    group_by: tuple[str, ...]
    unit: str
    thresholds: tuple[Threshold, ...]
    overlays: tuple[Overlay, ...]
    description: str = ""
    also: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """A dropdown whose choices are the values of `tag` among the series of `metrics`."""

    name: str
    label: str
    metrics: tuple[str, ...]
    tag: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    slug: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[Row, ...]
    refresh_ms: int
    source: str

    def panels(self) -> tuple[Panel, ...]:
        return tuple(p for row in self.rows for p in row.panels)

    def panel(self, panel_id: str) -> Panel | None:
        return next((p for p in self.panels() if p.id == panel_id), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every dashboard that loaded, by slug, and the errors of the files that did not."""

    dashboards: dict[str, Dashboard]
    errors: tuple[SpecError, ...]


class _Reader:
    """Walks a composed YAML node tree, turning each bad value into a SpecError at its line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str) -> SpecError:
        return SpecError(self.path, None if node is None else node.start_mark.line + 1, message)

    def mapping(self, node: yaml.Node, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, "expected a mapping (key: value lines)")
        found: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.text(key_node)
            if key not in allowed:
                raise self.fail(key_node, f"unknown key {key!r} (expected one of {allowed})")
            found[key] = value_node
        return found

    def sequence(self, node: yaml.Node) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "expected a list (lines starting with -)")
        return list(node.value)

    def text(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, "expected a single value")
        return str(node.value)

    def number(self, node: yaml.Node) -> float:
        try:
            return float(self.text(node))
        except ValueError:
            raise self.fail(node, f"{self.text(node)!r} is not a number") from None

    def tags(self, node: yaml.Node) -> tuple[tuple[str, str], ...]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, "tags must be a mapping like {service: web}")
        return tuple(sorted((self.text(k), self.text(v)) for k, v in node.value))

    def required(self, fields: dict[str, yaml.Node], key: str, parent: yaml.Node) -> str:
        if key not in fields:
            raise self.fail(parent, f"missing {key!r}")
        value = self.text(fields[key]).strip()
        if not value:
            raise self.fail(fields[key], f"{key!r} must not be empty")
        return value


def _overlays(reader: _Reader, node: yaml.Node) -> tuple[Overlay, ...]:
    overlays = []
    for item in reader.sequence(node):
        fields = reader.mapping(item, ("kind", "tags"))
        kind = reader.required(fields, "kind", item)
        if kind not in KINDS:
            raise reader.fail(fields["kind"], f"kind must be one of {', '.join(KINDS)}")
        tags = reader.tags(fields["tags"]) if "tags" in fields else ()
        overlays.append(Overlay(kind, tags))
    return tuple(overlays)


def _panel(reader: _Reader, node: yaml.Node, panel_id: str, defaults: tuple[Overlay, ...]) -> Panel:
    allowed = (
        "title", "description", "metric", "tags", "agg", "group_by", "unit", "thresholds",
        "annotations", "also",
    )  # fmt: skip
    fields = reader.mapping(node, allowed)
    metric = reader.required(fields, "metric", node)
    agg = _agg(reader, fields)
    unit = reader.text(fields["unit"]) if "unit" in fields else ""
    if unit not in UNITS:
        raise reader.fail(fields["unit"], f"unit must be one of {', '.join(map(repr, UNITS))}")
    group_by = _group_by(reader, fields, ())
    also = (
        tuple(_source(reader, item, group_by) for item in reader.sequence(fields["also"]))
        if "also" in fields
        else ()
    )
    thresholds = []
    for item in reader.sequence(fields["thresholds"]) if "thresholds" in fields else []:
        parts = reader.mapping(item, ("value", "color"))
        value = reader.number(parts["value"]) if "value" in parts else None
        if value is None:
            raise reader.fail(item, "a threshold needs a value")
        thresholds.append(Threshold(value, reader.text(parts.get("color", parts["value"]))))
    overlays = _overlays(reader, fields["annotations"]) if "annotations" in fields else defaults
    return Panel(
        id=panel_id,
        title=reader.text(fields["title"]) if "title" in fields else metric,
        metric=metric,
        tags=reader.tags(fields["tags"]) if "tags" in fields else (),
        agg=agg,
        group_by=group_by,
        unit=unit,
        thresholds=tuple(thresholds),
        overlays=overlays,
        description=reader.text(fields["description"]).strip() if "description" in fields else "",
        also=also,
    )


def _agg(reader: _Reader, fields: dict[str, yaml.Node]) -> str:
    agg = reader.text(fields["agg"]) if "agg" in fields else "mean"
    if agg not in AGGREGATES and agg not in COUNTER_AGGREGATES and percentile(agg) is None:
        raise reader.fail(fields["agg"], f"agg {agg!r} is not an aggregate; {AGG_HELP}")
    return agg


def _group_by(
    reader: _Reader, fields: dict[str, yaml.Node], default: tuple[str, ...]
) -> tuple[str, ...]:
    if "group_by" not in fields:
        return default
    return tuple(reader.text(item) for item in reader.sequence(fields["group_by"]))


def _source(reader: _Reader, node: yaml.Node, group_by: tuple[str, ...]) -> Source:
    """An `also` query: metric, tags, agg, group_by (the panel's by default), ratio_of (a
    metric, tags and agg divided by, over the same groups), scale and offset."""
    allowed = ("metric", "tags", "agg", "group_by", "ratio_of", "scale", "offset")
    fields = reader.mapping(node, allowed)
    source = Source(
        metric=reader.required(fields, "metric", node),
        tags=reader.tags(fields["tags"]) if "tags" in fields else (),
        agg=_agg(reader, fields),
        group_by=_group_by(reader, fields, group_by),
        scale=reader.number(fields["scale"]) if "scale" in fields else 1.0,
        offset=reader.number(fields["offset"]) if "offset" in fields else 0.0,
    )
    if "ratio_of" not in fields:
        return source
    parts = reader.mapping(fields["ratio_of"], ("metric", "tags", "agg"))
    denominator = Source(
        metric=reader.required(parts, "metric", fields["ratio_of"]),
        tags=reader.tags(parts["tags"]) if "tags" in parts else (),
        agg=_agg(reader, parts),
        group_by=source.group_by,
    )
    return replace(source, ratio_of=denominator)


def parse_dashboard(text: str, slug: str, source: str) -> Dashboard:
    """One dashboard from YAML text; SpecError names `source` and the line of the mistake."""
    reader = _Reader(source)
    if not _SLUG.match(slug):
        raise SpecError(source, None, "file name must be lowercase letters, digits, - or _")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else None
        raise SpecError(source, line, f"not valid YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise SpecError(source, None, f"not valid YAML: {error}") from None
    if root is None:
        raise SpecError(source, None, "the file is empty")
    allowed = ("title", "description", "variables", "annotations", "rows", "refresh")
    fields = reader.mapping(root, allowed)
    title = reader.required(fields, "title", root)
    variables = []
    for item in reader.sequence(fields["variables"]) if "variables" in fields else []:
        parts = reader.mapping(item, ("name", "label", "metric", "metrics", "tag"))
        name = reader.required(parts, "name", item)
        if not re.match(r"^[a-z_][a-z0-9_]*$", name):
            raise reader.fail(parts["name"], "a variable name is lowercase letters, digits, _")
        if name in RESERVED:
            raise reader.fail(parts["name"], f"{name!r} is taken by the URL; choose another name")
        label = reader.text(parts["label"]) if "label" in parts else name
        tag = reader.text(parts["tag"]) if "tag" in parts else name
        if "metrics" in parts:
            metrics = tuple(reader.text(m) for m in reader.sequence(parts["metrics"]))
        else:
            metrics = (reader.required(parts, "metric", item),)
        variables.append(Variable(name, label, metrics, tag))
    names = {v.name for v in variables}
    defaults = _overlays(reader, fields["annotations"]) if "annotations" in fields else ()
    if "rows" not in fields:
        raise reader.fail(root, "missing 'rows'")
    rows = []
    for r, row_node in enumerate(reader.sequence(fields["rows"])):
        parts = reader.mapping(row_node, ("title", "panels"))
        if "panels" not in parts:
            raise reader.fail(row_node, "a row needs 'panels'")
        panels = []
        for p, panel_node in enumerate(reader.sequence(parts["panels"])):
            panel = _panel(reader, panel_node, f"{r}-{p}", defaults)
            also = [t for a in panel.also for t in a.tags + (a.ratio_of.tags if a.ratio_of else ())]
            for _, value in (*panel.tags, *also, *(t for o in panel.overlays for t in o.tags)):
                match = _VARIABLE.match(value)
                if match and match[1] not in names:
                    raise reader.fail(panel_node, f"{value} is not a variable of this dashboard")
            panels.append(panel)
        rows.append(Row(reader.text(parts["title"]) if "title" in parts else "", tuple(panels)))
    refresh_ms = 10_000
    if "refresh" in fields:
        try:
            refresh_ms = max(1000, parse_duration_ns(reader.text(fields["refresh"])) // NS_PER_MS)
        except ValueError as error:
            raise reader.fail(fields["refresh"], str(error)) from None
    description = reader.text(fields["description"]) if "description" in fields else ""
    return Dashboard(slug, title, description, tuple(variables), tuple(rows), refresh_ms, source)


def builtin_texts() -> dict[str, tuple[str, str]]:
    """The dashboards shipped with Shipboard: slug -> (YAML text, source name)."""
    folder = resources.files("dashboards").joinpath("builtin")
    found = {}
    for item in folder.iterdir():
        if item.name.endswith(".yaml"):
            found[item.name.removesuffix(".yaml")] = (item.read_text(), f"builtin/{item.name}")
    return found


def load_catalog(folder: Path | None) -> Catalog:
    """The built-in dashboards, then the `*.yaml` files of `folder` (same name wins). A bad
    file is reported in `errors` and left out; the others still load."""
    texts = builtin_texts()
    errors: list[SpecError] = []
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            try:
                texts[path.stem] = (path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError) as error:
                texts.pop(path.stem, None)
                errors.append(SpecError(path, None, f"cannot be read: {error}"))
    dashboards: dict[str, Dashboard] = {}
    for slug, (text, source) in sorted(texts.items()):
        try:
            dashboards[slug] = parse_dashboard(text, slug, source)
        except SpecError as error:
            errors.append(error)
    return Catalog(dashboards, tuple(errors))


def substitute(value: str, variables: dict[str, str]) -> str:
    """`$name` replaced by the variable's value (`*` when unset, which matches everything)."""
    match = _VARIABLE.match(value)
    return variables.get(match[1], "*") if match else value
