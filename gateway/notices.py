"""The gateway's messages to a signed-in user's pages: who is viewing their screen, idle and closing-hours warnings,
who ended a session.

Code anywhere in the gateway posts a typed notice (a frozen dataclass below) for a user with
:meth:`NoticeBoard.post`. It is stored in the ``notices`` table — the user's page may be
connected to another node — and delivered at once to this node's pages of that user (the
fast path). Every node's delivery loop (:meth:`NoticeBoard.run`) reads, every
``poll_interval`` seconds while pages are connected, the notices posted in the last
``lookback`` seconds for its connected users, and delivers those it has not delivered yet:
a look back rather than "the ids after the last one", because PostgreSQL does not commit ids
in order. Each node's clock must be within ``lookback`` of the others' (NTP).

A page connects with ``GET /api/v1/notices`` (:mod:`gateway.web.notice_routes`), which
first replays the user's notices that have not expired (so a page opened while someone is
already viewing knows it), then streams new ones. Each notice kind has its lifetime; rows
past it are purged. Pages are cheap: a subscription is a small buffer, and one user holds at
most ``max_streams_per_user`` of them (a new one ends the oldest, most likely a closed tab).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import Column, Index, Integer, String, Table, Text, delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from base.db import Store, UTCDateTime, metadata
from base.metrics import Metrics

log = logging.getLogger(__name__)

#: Notices for users, kept until they expire.
notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON object: the notice's fields
    Column("posted", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False),
    Index("ix_notices_username_posted", "username", "posted"),
    Index("ix_notices_expires", "expires"),
)

VIEWING_LIFETIME = 12 * 3600.0


def _require_text(owner: object, **values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{type(owner).__name__}.{name} must be a non-empty text, not {value!r}")


@dataclass(frozen=True, slots=True)
class ViewingStarted:
    """``by`` began viewing the user's screen on ``target`` (a live view or the wall)."""

    by: str
    target: str
    type: ClassVar[str] = "viewing_started"

    def __post_init__(self) -> None:
        _require_text(self, by=self.by, target=self.target)

    def expires(self, posted: float) -> float:
        return posted + VIEWING_LIFETIME  # kept as long as a session lasts: a page opened later still learns it


@dataclass(frozen=True, slots=True)
class ViewingEnded:
    """``by`` stopped viewing the user's screen (on ``target``; None: on every target)."""

    by: str
    target: str | None = None
    type: ClassVar[str] = "viewing_ended"

    def __post_init__(self) -> None:
        _require_text(self, by=self.by)

    def expires(self, posted: float) -> float:
        return posted + VIEWING_LIFETIME  # as long as the ViewingStarted it answers


@dataclass(frozen=True, slots=True)
class IdleWarning:
    """The session (on ``target``) ends for idleness at ``deadline_epoch`` (the gateway's clock) without input."""

    deadline_epoch: float
    target: str | None = None
    type: ClassVar[str] = "idle_warning"

    def __post_init__(self) -> None:
        if isinstance(self.deadline_epoch, bool) or not isinstance(self.deadline_epoch, (int, float)) \
                or not math.isfinite(self.deadline_epoch):
            raise ValueError(f"IdleWarning.deadline_epoch must be a time, not {self.deadline_epoch!r}")

    def expires(self, posted: float) -> float:
        return max(posted, self.deadline_epoch) + 60.0


@dataclass(frozen=True, slots=True)
class WindowClosing:
    """The session (on ``target``) ends at ``closing_epoch`` (the gateway's clock): its policy's hours end then."""

    closing_epoch: float
    target: str | None = None
    type: ClassVar[str] = "window_closing"

    def __post_init__(self) -> None:
        if isinstance(self.closing_epoch, bool) or not isinstance(self.closing_epoch, (int, float)) \
                or not math.isfinite(self.closing_epoch):
            raise ValueError(f"WindowClosing.closing_epoch must be a time, not {self.closing_epoch!r}")

    def expires(self, posted: float) -> float:
        return max(posted, self.closing_epoch) + 60.0


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """``by`` ended the user's session (on ``target``) for ``reason``."""

    by: str
    reason: str
    target: str | None = None
    type: ClassVar[str] = "session_ended"

    def __post_init__(self) -> None:
        _require_text(self, by=self.by, reason=self.reason)

    def expires(self, posted: float) -> float:
        return posted + 300.0


@dataclass(frozen=True, slots=True)
class NodeDraining:
    """The gateway node holding the session (on ``target``) is stopping: it ends the session at ``deadline_epoch``."""

    deadline_epoch: float
    target: str | None = None
    type: ClassVar[str] = "node_draining"

    def __post_init__(self) -> None:
        if isinstance(self.deadline_epoch, bool) or not isinstance(self.deadline_epoch, (int, float)) \
                or not math.isfinite(self.deadline_epoch):
            raise ValueError(f"NodeDraining.deadline_epoch must be a time, not {self.deadline_epoch!r}")

    def expires(self, posted: float) -> float:
        return max(posted, self.deadline_epoch) + 60.0


Notice = ViewingStarted | ViewingEnded | IdleWarning | WindowClosing | SessionEnded | NodeDraining


class NoticePoster(Protocol):
    """What a session needs of the notice board: post without waiting (:meth:`NoticeBoard.post_nowait`)."""

    def post_nowait(self, username: str, notice: Notice) -> None: ...


@dataclass(frozen=True, slots=True)
class PostedNotice:
    """A notice as stored and delivered: its id, whom it is for, its kind and fields, and when it was posted."""

    id: int
    username: str
    type: str
    fields: Mapping[str, Any]
    posted: float

    def to_json(self) -> dict[str, Any]:
        """What a page receives: ``id``, ``type``, ``posted`` (epoch seconds) and the notice's fields."""
        return {**self.fields, "id": self.id, "type": self.type, "posted": self.posted}


class Subscription:
    """One connected page of one user: notices wait here until its stream sends them."""

    def __init__(self, username: str, web_session_id: str, capacity: int) -> None:
        self.username = username
        self.web_session_id = web_session_id
        self.capacity = capacity
        #: Why the stream must end (signed_out, replaced, overflow, shutdown), or None while it runs.
        self.ended: str | None = None
        self._waiting: deque[PostedNotice] = deque()
        self._ready = asyncio.Event()

    def deliver(self, notice: PostedNotice) -> bool:
        """Queue ``notice``; a page that cannot keep up is ended (it reconnects and replays); False then."""
        if len(self._waiting) >= self.capacity:
            self.end("overflow")
            return False
        self._waiting.append(notice)
        self._ready.set()
        return True

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self._ready.set()

    async def next(self, timeout: float) -> PostedNotice | None:
        """The next notice, or None after ``timeout`` seconds without one or once the stream is ended."""
        if not self._waiting and self.ended is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        if self.ended is not None or not self._waiting:
            return None
        notice = self._waiting.popleft()
        if not self._waiting:
            self._ready.clear()
        return notice


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class NoticeBoard:
    """Posts notices for users and delivers them to their connected pages on this node (see the module docstring)."""

    def __init__(self, store: Store, metrics: Metrics, clock: Callable[[], float] = time.time,
                 poll_interval: float = 0.5, lookback: float = 10.0, queue_size: int = 64,
                 max_streams_per_user: int = 8, replay_limit: int = 50) -> None:
        self.store = store
        self.clock = clock
        self.poll_interval = poll_interval
        self.lookback = lookback
        self.queue_size = queue_size
        self.max_streams_per_user = max_streams_per_user
        self.replay_limit = replay_limit
        self._metrics = metrics
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._delivered: dict[int, float] = {}  # id -> posted, for the look back's window
        self._pending_posts: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- posting

    async def post(self, username: str, notice: Notice) -> int:
        """Store ``notice`` for ``username`` and deliver it to their pages on this node; returns its id.

        Raises the database's error when it cannot be stored.
        """
        posted = self.clock()
        fields = asdict(notice)
        async with self.store.transaction() as connection:
            result = await connection.execute(insert(notices).values(
                username=username, type=notice.type, payload=json.dumps(fields), posted=_time(posted),
                expires=_time(notice.expires(posted))))
        inserted = result.inserted_primary_key
        assert inserted is not None
        self._metrics.notices_posted_total.labels(type=notice.type).inc()
        delivered = PostedNotice(int(inserted[0]), username, notice.type, fields, posted)
        self._deliver(delivered)
        return delivered.id

    def post_nowait(self, username: str, notice: Notice) -> None:
        """:meth:`post` in the background, for code that must not wait for the database (a failure is logged)."""
        task = asyncio.get_running_loop().create_task(self._post_logged(username, notice))
        self._pending_posts.add(task)
        task.add_done_callback(self._pending_posts.discard)

    async def _post_logged(self, username: str, notice: Notice) -> None:
        try:
            await self.post(username, notice)
        except (SQLAlchemyError, OSError) as error:
            log.warning("cannot post a notice", extra={"ctx": {"user": username, "type": notice.type,
                                                               "error": error}})

    # ---------------------------------------------------------------- pages

    def subscribe(self, username: str, web_session_id: str) -> Subscription:
        """A new page of ``username``; past ``max_streams_per_user``, the user's oldest page is ended."""
        while len(pages := self._subscriptions.get(username, [])) >= self.max_streams_per_user:
            self._close(pages[0], "replaced")
        subscription = Subscription(username, web_session_id, self.queue_size)
        self._subscriptions.setdefault(username, []).append(subscription)
        self._metrics.notice_streams_open.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription, reason: str = "closed") -> None:
        """Forget a page whose stream has ended (``reason``: why, unless :meth:`Subscription.end` said)."""
        pages = self._subscriptions.get(subscription.username, [])
        if subscription in pages:
            pages.remove(subscription)
            if not pages:
                del self._subscriptions[subscription.username]
            self._metrics.notice_streams_open.dec()
            self._metrics.notice_streams_ended_total.labels(reason=subscription.ended or reason).inc()

    def web_session_ids(self) -> set[str]:
        """The web sessions of the connected pages (their streams end with them)."""
        return {page.web_session_id for pages in self._subscriptions.values() for page in pages}

    def end_web_sessions(self, ended: Mapping[str, str]) -> None:
        """End the streams of pages whose web session has ended (logged out, expired, disabled)."""
        for pages in list(self._subscriptions.values()):
            for page in list(pages):
                if page.web_session_id in ended:
                    self._close(page, "signed_out")

    def end_all(self) -> None:
        """End every stream (the gateway is shutting down)."""
        for pages in list(self._subscriptions.values()):
            for page in list(pages):
                self._close(page, "shutdown")

    async def recent(self, username: str, after_id: int | None = None) -> list[PostedNotice]:
        """``username``'s notices that have not expired (after ``after_id``), oldest first, at most ``replay_limit``."""
        c = notices.c
        query = select(notices).where(c.username == username, c.expires > _time(self.clock()))
        if after_id is not None:
            query = query.where(c.id > after_id)
        query = query.order_by(c.id.desc()).limit(self.replay_limit)
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).all()
        return [self._posted(row) for row in reversed(rows)]

    # ---------------------------------------------------------------- delivery across nodes

    async def run(self) -> None:
        """Deliver notices posted on other nodes to this node's pages, until cancelled."""
        while True:
            try:
                await self.deliver_new()
            except (SQLAlchemyError, OSError) as error:  # the database is away: try again next round
                log.warning("notice delivery: %s", error)
            await asyncio.sleep(self.poll_interval)

    async def deliver_new(self) -> int:
        """One round of the delivery loop; returns how many notices it delivered."""
        now = self.clock()
        since = now - self.lookback
        self._delivered = {key: posted for key, posted in self._delivered.items() if posted >= since - self.lookback}
        if not self._subscriptions:
            return 0
        c = notices.c
        query = (select(notices).where(c.username.in_(sorted(self._subscriptions)), c.posted >= _time(since),
                                       c.expires > _time(now)).order_by(c.id))
        async with self.store.read() as connection:
            rows = (await connection.execute(query)).all()
        fresh = [self._posted(row) for row in rows if row.id not in self._delivered]
        for notice in fresh:
            self._deliver(notice)
        return len(fresh)

    async def purge(self) -> int:
        """Delete expired notices; returns how many."""
        async with self.store.transaction() as connection:
            result = await connection.execute(delete(notices).where(notices.c.expires <= _time(self.clock())))
        return int(result.rowcount)

    async def close(self) -> None:
        """End every stream and let posts under way reach the database."""
        self.end_all()
        if self._pending_posts:
            await asyncio.wait(self._pending_posts, timeout=5.0)

    def _deliver(self, notice: PostedNotice) -> None:
        self._delivered[notice.id] = notice.posted
        for page in list(self._subscriptions.get(notice.username, [])):
            page.deliver(notice)

    def _close(self, page: Subscription, reason: str) -> None:
        page.end(reason)
        self.unsubscribe(page)

    @staticmethod
    def _posted(row: Any) -> PostedNotice:
        return PostedNotice(row.id, row.username, row.type, json.loads(row.payload), row.posted.timestamp())
