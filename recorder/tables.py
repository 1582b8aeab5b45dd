"""The recordings index's tables: one row per recording, and its events for the player's timeline."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from base.db import UTCDateTime, metadata

#: One row per finished (or recovered) recording: the index behind search.
recordings = Table(
    "recordings",
    metadata,
    Column("id", String(32), primary_key=True),  # the session id, see recorder.journal.SESSION_ID_RE
    Column("user", String(255), nullable=False),
    Column("source", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("ended", UTCDateTime, nullable=True),  # None: the journal has no END record (yet)
    Column("duration", Float, nullable=False),
    Column("end_reason", Text, nullable=True),
    Column("bytes", BigInteger, nullable=False),
    Column("keys", Integer, nullable=False),
    Column("clicks", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("activity", Text, nullable=False),  # JSON [[bucket_start_s, keys, clicks], ...], non-empty buckets
    Column("sha256", String(64), nullable=True),
    Column("video_state", String(8), nullable=False, server_default="none"),
    Column("video_path", Text, nullable=True),
    Column("node", String(255), nullable=False),
    # JSON ["group", ...] (sorted, ASCII): the user's groups when the session started; None: not recorded
    Column("user_groups", Text, nullable=True),
    Index("ix_recordings_started", "started"),
    Index("ix_recordings_user_started", "user", "started"),
    Index("ix_recordings_target_started", "target", "started"),
)

#: The EVENT records of each recording, for the player's timeline.
recording_events = Table(
    "recording_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("t", Float, nullable=False),  # seconds since the recording started
    Column("type", String(64), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object: the event's other fields
    Index("ix_recording_events_recording", "recording_id", "t"),
)
