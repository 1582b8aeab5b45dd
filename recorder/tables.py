"""The recordings index's tables: one row per recording, its events for the player's timeline, its source
address for search by network, a terminal's screen text and the text read off desktops for search by text, the
personal data found in them, and what reviewers made of it: bookmarks and exported clips."""

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
    Column("display_name", String(255), nullable=True),  # the name people know the user by (Unicode); None: none
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

#: The text that appeared on a terminal recording's screen (bounded, escape sequences removed), for search;
#: sealed (recorder.text_index).
recording_text = Table(
    "recording_text",
    metadata,
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True),
    Column("text", Text, nullable=False),
)

#: Lines of text read off a desktop recording's screen (OCR) where it changed, and when; personal data in them is
#: replaced by ``[kind]`` (see ``pii_findings``), and the text is sealed (recorder.text_index). Terminal
#: recordings' lines have no box.
screen_text = Table(
    "screen_text",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("t", Float, nullable=False),  # seconds since the recording started: the line was on screen then
    Column("x", Integer, nullable=True),
    Column("y", Integer, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("text", Text, nullable=False),  # sealed; once opened, normalised: NFKC, no spaces between CJK characters
    Index("ix_screen_text_recording", "recording_id", "t"),
)

#: The blind index of each recording's sealed text: keyed tokens of its characters and character pairs, once
#: per minute of the recording (a terminal's output: once) and origin (recorder.text_index, recorder.screen_search).
text_tokens = Table(
    "text_tokens",
    metadata,
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True),
    Column("origin", String(8), primary_key=True),  # "screen" (screen_text) or "terminal" (recording_text)
    Column("bucket", Integer, primary_key=True),  # the minute of the recording its lines were on screen (0: terminal)
    Column("token", BigInteger, primary_key=True),  # recorder.text_index.TextKeys.tokens
    Index("ix_text_tokens_token", "token", "recording_id"),
    sqlite_with_rowid=False,  # the primary key is the table: each row stored once
)

#: Personal data found in a recording (on screen or typed): its kind, where and when, and a keyed hash of the
#: value (HMAC-SHA256), never the value itself.
pii_findings = Table(
    "pii_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("t", Float, nullable=False),  # seconds since the recording started: visible (or typed) from then...
    Column("until", Float, nullable=False),  # ...until then
    Column("x", Integer, nullable=True),  # the region on the desktop; None: typed, not seen on screen
    Column("y", Integer, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("kind", String(32), nullable=False),  # card, my_number, phone_jp, or a configured pattern's kind
    Column("digest", String(64), nullable=False),  # hex HMAC-SHA256 of the normalised value
    Index("ix_pii_findings_recording", "recording_id", "t"),
    Index("ix_pii_findings_digest", "digest"),
)

#: Each recording's source address as a number, so that search by network (CIDR) works on any database.
recording_sources = Table(
    "recording_sources",
    metadata,
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, nullable=False),  # 4 or 6
    # Fixed-width hex, compared byte by byte (PostgreSQL: the "C" collation), so it sorts as the number does.
    Column("address", String(32).with_variant(String(32, collation="C"), "postgresql"), nullable=False),
    Index("ix_recording_sources_address", "version", "address"),
)

#: Moments of recordings that reviewers marked, each with a note ("training: good handling of a complaint").
recording_bookmarks = Table(
    "recording_bookmarks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("t", Float, nullable=False),  # seconds since the recording started
    Column("note", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Index("ix_recording_bookmarks_recording", "recording_id", "t"),
    Index("ix_recording_bookmarks_owner", "owner", "created"),
)

#: Clips (a stretch of a recording) exported to MP4, and how far each export has come.
recording_clips = Table(
    "recording_clips",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("recording_id", String(32), ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("clip_start", Float, nullable=False),  # seconds since the recording started
    Column("clip_end", Float, nullable=False),
    Column("state", String(16), nullable=False),  # recorder.clips.ClipState
    Column("progress", Float, nullable=False),  # 0 to 1
    Column("error", Text, nullable=True),
    Column("path", Text, nullable=True),  # the MP4, once ready
    Column("node", String(255), nullable=False),  # the gateway that renders it
    Column("created", UTCDateTime, nullable=False),
    Index("ix_recording_clips_recording", "recording_id", "created"),
    Index("ix_recording_clips_owner", "owner", "created"),
)

#: Work any node may do (index a recording; recover one whose node died), claimed by a lease.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # recorder.jobs.JobKind
    Column("recording_id", String(32), nullable=False),
    Column("node", String(255), nullable=True),  # who holds the lease; None: nobody yet
    Column("lease_until", Float, nullable=False),  # epoch seconds; the job may be claimed once it has passed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created", UTCDateTime, nullable=False),
    Index("ix_jobs_kind_recording", "kind", "recording_id", unique=True),
    Index("ix_jobs_lease", "lease_until"),
)

#: Recordings an administrator put on legal hold: retention never deletes them while the row exists.
recording_holds = Table(
    "recording_holds",
    metadata,
    Column("recording_id", String(32), primary_key=True),
    Column("by", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", UTCDateTime, nullable=False),
)

#: What is left of a recording retention deleted: who, what, when, and the hash its seal vouched for.
recording_tombstones = Table(
    "recording_tombstones",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user", String(255), nullable=False),
    Column("target", String(255), nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("deleted", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("sha256", String(64), nullable=True),
)
