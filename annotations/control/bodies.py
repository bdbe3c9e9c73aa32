"""Request bodies of the control plane as pydantic models, and reading one from a request.

    start = await read_body(request, DeployStartBody)

JSON that does not decode, a body that is not an object, or a field that fails its model is a
BadRequestError (400) whose message names the field first: `watch: Input should be a valid
list`. Fields the model does not name are ignored, as they always were.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from annotations.control.errors import BadRequestError, first_problem
from annotations.control.timespec import parse_time
from storage.timeparse import MAX_ABS_NS, parse_duration_ns

MAX_TEXT = 10_000

M = TypeVar("M", bound=BaseModel)


def _empty_if_null(value: object) -> object:
    return "" if value is None else value


def _no_nul(text: str) -> str:
    # PostgreSQL's text cannot hold one: refused here, for what it is, on either backend.
    if "\x00" in text:
        raise ValueError("must not hold a NUL character")
    return text


# JSON null and "" both mean "not given" for a text field.
Text = Annotated[
    str,
    BeforeValidator(_empty_if_null),
    StringConstraints(max_length=MAX_TEXT),
    AfterValidator(_no_nul),
]
RequiredText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_no_nul)
]
Word = Annotated[str, AfterValidator(_no_nul)]  # an item of a list or mapping of texts
TimeNs = Annotated[int, Field(ge=-MAX_ABS_NS, le=MAX_ABS_NS)]
# A time as text (now, -5m, ISO 8601) or a number of unix seconds.
TimeText = str | int | float


def _not_a_number(key: str) -> str:
    # A bare number would read as a deploy id where deploys are looked up by id or key.
    if key.isdigit():
        raise ValueError("must not be a bare number")
    return key


IdempotencyKey = Annotated[Text, AfterValidator(_not_a_number)]


def _empty_dict_if_null(value: object) -> object:
    return {} if value is None else value


def _split_commas(value: object) -> object:
    if value is None:
        return []
    if isinstance(value, str):
        return [w.strip() for w in value.split(",") if w.strip()]
    return value


class Body(BaseModel):
    """Strict: a number is not a string, `true` is not a number."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    def time_ns(self, name: str, now_ns: int) -> int | None:
        """`<name>_ns` if given, else `<name>` parsed against `now_ns`, else None."""
        ns: int | None = getattr(self, f"{name}_ns")
        if ns is not None:
            return ns
        text: TimeText | None = getattr(self, name)
        return None if text is None else parse_time(str(text), now_ns)

    def time_ns_or_now(self, name: str, now_ns: int) -> int:
        """The time `name` if given, else `now_ns`."""
        given = self.time_ns(name, now_ns)
        return now_ns if given is None else given


def _duration(text: str) -> str:
    if text and parse_duration_ns(text) <= 0:  # its ValueError names what a duration is
        raise ValueError("must be longer than 0")
    return text


Duration = Annotated[Text, AfterValidator(_duration)]  # "2m", "30s"; "" when not given


class DeployStartBody(Body):
    service: RequiredText
    environment: RequiredText
    version: RequiredText
    description: Text = ""
    url: Text = ""
    watch: Annotated[list[Word], BeforeValidator(_split_commas)] = []
    risk: Text = ""
    rollback: Text = ""
    verify_after: Duration = ""
    who: Text = ""
    start: TimeText | None = None
    start_ns: TimeNs | None = None
    idempotency_key: IdempotencyKey = ""

    def verify_after_ns(self) -> int | None:
        return parse_duration_ns(self.verify_after) if self.verify_after else None


class DeployFinishBody(Body):
    status: RequiredText
    log_tail: Text = ""
    exit_code: Annotated[int, Field(ge=-(2**31), le=2**31)] | None = None
    end: TimeText | None = None
    end_ns: TimeNs | None = None


class NoteBody(Body):
    title: RequiredText
    body: Text = ""
    who: Text = ""
    tags: Annotated[dict[Word, Word], BeforeValidator(_empty_dict_if_null)] = {}
    start: TimeText | None = None
    start_ns: TimeNs | None = None
    end: TimeText | None = None
    end_ns: TimeNs | None = None
    idempotency_key: IdempotencyKey = ""


class TokenBody(Body):
    name: RequiredText
    role: RequiredText


async def read_json(request: web.Request) -> Any:
    """The request's body, decoded; BadRequestError when it is not JSON."""
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise BadRequestError(f"body is not JSON: {error}") from None


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON object as `model`; BadRequestError naming the first bad field."""
    return validated(model, await read_json(request))


def validated(model: type[M], doc: object) -> M:
    """A decoded body as `model`; BadRequestError naming the first bad field."""
    if not isinstance(doc, dict):
        raise BadRequestError("body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as error:
        path, problem = first_problem(error)
        raise BadRequestError(f"{path}: {problem}" if path else problem) from None
