"""The announcement outbox: whoever records a deploy, a flag change or a note appends its
announcement here, in the transaction that records it.

An announcement is one row per target in the `announcements` table: committed with the
annotation or not at all, kept across a restart, and read, delivered and deleted by the
notifier of `annotations.chat`, which never writes an annotation's rows itself. What a line
says is the `render` function the outbox is built with (the chat's), so the control plane knows
the table and the record, never the chat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from annotations.control.db import ControlDB
from annotations.control.notes import Annotation


@dataclass(frozen=True, slots=True)
class Announcement:
    """What a target delivers: the chat line, and for JSON webhooks the annotation itself."""

    text: str
    event: str
    link: str
    annotation: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "event": self.event,
            "link": self.link,
            "annotation": self.annotation,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Announcement:
        return cls(str(doc["text"]), str(doc["event"]), str(doc["link"]), dict(doc["annotation"]))


Render = Callable[[Annotation, str], Announcement]
"""(annotation, event) -> its announcement; `event` is `added` or `updated` (a deploy's finish)."""


def _nothing(annotation: Annotation, event: str) -> Announcement:
    raise AssertionError("an outbox without targets renders nothing")


class Outbox:
    """The targets that announcements are queued for, and how an annotation becomes one.
    `Outbox()` has no target: appending to it queues nothing."""

    def __init__(
        self,
        targets: Sequence[str] = (),
        render: Render = _nothing,
        *,
        clock: Callable[[], int] = time.time_ns,
        on_append: Callable[[], None] | None = None,
    ) -> None:
        self.targets = tuple(targets)
        self._render = render
        self._clock = clock
        # Told (from any thread) that rows were queued, so that delivery need not wait for a poll.
        self._on_append = on_append

    def append(
        self,
        db: ControlDB,
        annotation: Annotation,
        event: str,
        targets: Collection[str] | None = None,
    ) -> None:
        """Queue the announcement of `annotation`, just `added` or `updated`, for every target,
        or for those of them named in `targets` (an alert rule's `notify`); joins the caller's
        transaction. Only an end (a deploy's finish, an alert's resolve) is news among the
        updates."""
        chosen = self.targets if targets is None else tuple(t for t in self.targets if t in targets)
        if not chosen or (event == "updated" and annotation.end_ns is None):
            return
        enqueue(db, chosen, self._render(annotation, event), self._clock())
        self.queued()

    def queued(self) -> None:
        """Tell the notifier that rows were queued (here, or by `enqueue` for targets of their
        own), so that it looks at once instead of at its next poll."""
        if self._on_append is not None:
            self._on_append()


def enqueue(db: ControlDB, targets: Sequence[str], announcement: Announcement, now_ns: int) -> None:
    """Queue `announcement` for every target (joins the caller's transaction)."""
    payload = orjson.dumps(announcement.to_json()).decode()
    for target in targets:
        db.execute(
            "INSERT INTO announcements (target, payload, created_ns, next_ns, tries, last_error)"
            " VALUES (?, ?, ?, ?, 0, '')",
            (target, payload, now_ns, now_ns),
        )
