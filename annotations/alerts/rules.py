"""Rule files: YAML (a list of rules, or `{rules: [...]}`) into `Rule` records, every problem
named by file and line, and the set of rules of some files and folders, reloaded when they
change.

A bad rule is left out with an error and the file's other rules load; a file that is not YAML
loads none. A rule name is one alert: the second rule of a name (in any file) is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aggregator.errors import QueryError
from aggregator.query import TagFilter
from annotations.alerts.model import ALERTNAME, Rule

RULE_SUFFIXES = (".yaml", ".yml")
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RuleError:
    """What is wrong, where: `file:line: message` (lines count from 1)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class RuleFile:
    """The rules of one file that loaded, and the errors of those that did not."""

    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)


def load_rules_file(path: str | os.PathLike[str]) -> RuleFile:
    """The rules of the file at `path`; a file that cannot be read is one error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        return RuleFile(errors=[RuleError(str(path), 1, f"cannot read the file: {reason}")])
    return load_rules_text(text, str(path))


def load_rules_text(text: str, file: str) -> RuleFile:
    """The rules written in `text`, with `file` naming it in errors and in each rule's source."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:  # a character YAML does not allow
        line = text.count("\n", 0, error.position) + 1
        message = f"not YAML: character #x{error.character:04x}: {error.reason}"
        return RuleFile(errors=[RuleError(file, line, message)])
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        why = " ".join(filter(None, (error.context, error.problem)))
        return RuleFile(errors=[RuleError(file, line, f"not YAML: {why}")])
    except yaml.YAMLError as error:
        return RuleFile(errors=[RuleError(file, 1, f"not YAML: {error}")])
    except (ValueError, LookupError, TypeError, ArithmeticError) as error:
        # PyYAML's constructors fail so on a tagged value that is not one (`!!int x`).
        message = f"not YAML: a tagged value (!!int, !!float …) does not parse: {error!r}"
        return RuleFile(errors=[RuleError(file, 1, message)])
    finally:
        loader.dispose()
    if root is None:
        return RuleFile()
    items = _rule_nodes(file, root, data)
    if isinstance(items, RuleError):
        return RuleFile(errors=[items])
    result = RuleFile()
    first_at: dict[str, int] = {}
    for node, item in items:
        rule = _load_rule(file, node, item, result.errors)
        if rule is None:
            continue
        line = node.start_mark.line + 1
        if rule.name in first_at:
            message = f"duplicate rule name (first at line {first_at[rule.name]})"
            result.errors.append(_error(file, node, ("name",), rule.name, message))
            continue
        first_at[rule.name] = line
        result.rules.append(rule.model_copy(update={"source": f"{file}:{line}"}))
    return result


def _rule_nodes(file: str, root: yaml.Node, data: Any) -> list[tuple[yaml.Node, Any]] | RuleError:
    """Each rule's node and data: the top list, or the list under `rules:`."""
    shape = "a rules file is a list of rules, or a mapping with `rules:` holding that list"
    if isinstance(root, yaml.MappingNode) and isinstance(data, dict):
        for key, _ in root.value:
            if key.value != "rules":
                line = key.start_mark.line + 1
                return RuleError(file, line, f"unknown key {key.value!r}: {shape}")
        if data.get("rules") is None:
            return []
        root, data = root.value[-1][1], data["rules"]
    if not (isinstance(root, yaml.SequenceNode) and isinstance(data, list)):
        return RuleError(file, root.start_mark.line + 1, shape)
    return list(zip(root.value, data, strict=True))


def _load_rule(file: str, node: yaml.Node, item: Any, errors: list[RuleError]) -> Rule | None:
    """One rule, or None with its errors added to `errors`."""
    if not isinstance(item, dict):
        errors.append(_error(file, node, (), None, "a rule is a mapping (name: …, query: …)"))
        return None
    name = item.get("name") if isinstance(item.get("name"), str) else None
    if "source" in item:
        errors.append(_error(file, node, ("source",), name, "not a rule field (set on loading)"))
        return None
    try:
        rule = Rule.model_validate(item)
    except ValidationError as error:
        for problem in error.errors():
            message = problem["msg"].removeprefix("Value error, ")
            errors.append(_error(file, node, tuple(problem["loc"]), name, message))
        return None
    problems = list(_problems(rule))
    for loc, message in problems:
        errors.append(_error(file, node, loc, name, message))
    return None if problems else rule


def _problems(rule: Rule) -> Iterable[tuple[Loc, str]]:
    """What a valid-looking rule still gets wrong, by the field to fix."""
    selectors = [("query", rule.query)] + ([("ratio_of", rule.ratio_of)] if rule.ratio_of else [])
    for where, selector in selectors:
        for key, pattern in selector.tags.items():
            try:
                TagFilter.of(key, pattern)
            except QueryError as error:
                yield (where, "tags", key), str(error).removeprefix("tags: ")
    if rule.window_ns <= 0:
        yield ("window",), "must be longer than 0s"
    if rule.interval is not None and rule.interval_ns(1) <= 0:
        yield ("interval",), "must be longer than 0s"
    if rule.ratio_of is not None and "group_by" in rule.ratio_of.model_fields_set:
        extra = set(rule.ratio_of.group_by) - set(rule.query.group_by)
        if extra:
            yield (
                ("ratio_of", "group_by"),
                f"{', '.join(sorted(extra))} not in query.group_by: each group of the query"
                " divides by the ratio_of group it falls in",
            )
    if ALERTNAME in rule.labels:
        yield ("labels", ALERTNAME), "alertname is the rule's name, set on every alert"


def _error(file: str, node: yaml.Node, loc: Loc, name: str | None, message: str) -> RuleError:
    """`message` about the field at `loc` in the rule at `node`, at the line naming it."""
    where = ".".join(str(part) for part in loc)
    text = f"{where}: {message}" if where else message
    return RuleError(file, _line_of(node, loc), f"rule {name}: {text}" if name else text)


def _line_of(node: yaml.Node, loc: Loc) -> int:
    """The line of the deepest part of `loc` that is written in the file (from 1)."""
    line = node.start_mark.line
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(part)]
            if not found:
                break
            key, node = found[-1]
            line = key.start_mark.line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _rule_files(paths: Sequence[Path]) -> dict[Path, tuple[int, int] | None]:
    """Every rule file under `paths` (folders: their `*.yaml` and `*.yml`, not hidden ones)
    with its (mtime, size); a named file that is missing maps to None. A missing folder has
    none: the default rules folder need not exist."""
    found: dict[Path, tuple[int, int] | None] = {}
    for path in paths:
        if path.is_dir():
            with os.scandir(path) as entries:
                names = sorted(
                    e.name
                    for e in entries
                    if e.name.endswith(RULE_SUFFIXES) and not e.name.startswith(".")
                )
            candidates = [path / name for name in names]
        elif path.exists() or path.name.endswith(RULE_SUFFIXES):
            candidates = [path]
        else:
            candidates = []
        for candidate in candidates:
            try:
                stat = candidate.stat()
            except OSError:
                found.setdefault(candidate, None)
                continue
            if candidate.is_file():
                found.setdefault(candidate, (stat.st_mtime_ns, stat.st_size))
    return found


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of some files and folders, by name, with the errors of all their files."""

    paths: tuple[Path, ...]
    rules: dict[str, Rule]
    errors: list[RuleError]
    files: dict[Path, tuple[int, int] | None]  # each file's (mtime_ns, size) when loaded

    @classmethod
    def load(cls, paths: Iterable[str | os.PathLike[str]]) -> RuleSet:
        """Load every rule file under `paths`, in order (a folder's files by name)."""
        roots = tuple(Path(p) for p in paths)
        files = _rule_files(roots)  # before reading: an edit after this is seen by changed()
        rules: dict[str, Rule] = {}
        errors: list[RuleError] = []
        for path, stamp in files.items():
            if stamp is None:
                errors.append(RuleError(str(path), 1, "no such rule file"))
                continue
            loaded = load_rules_file(path)
            errors.extend(loaded.errors)
            for rule in loaded.rules:
                if rule.name in rules:
                    file, _, line = rule.source.rpartition(":")
                    message = (
                        f"rule {rule.name}: duplicate name (first in {rules[rule.name].source})"
                    )
                    errors.append(RuleError(file, int(line), message))
                else:
                    rules[rule.name] = rule
        return cls(roots, rules, errors, files)

    def changed(self) -> bool:
        """True when a file was added, removed or written since loading (a few stat calls)."""
        return _rule_files(self.paths) != self.files

    def reload(self) -> RuleSet:
        return RuleSet.load(self.paths)
