"""``deskgate recordings list``, ``render`` and ``verify``: search the index; one recording, found by id.

``deskgate recordings keys`` and ``new-key``: the recording keys (``storage.recording_keys``) and their rotation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from base.times import parse_time
from gateway.cli import retention
from gateway.cli.common import CommandGroups
from gateway.cli.messages import _
from gateway.config import Config, load_config
from gateway.recording_service import load_keyring, recorder_storage
from gateway.schema import open_current_store
from recorder.errors import IntegrityError, RecordingError, RecordingKeyError
from recorder.index import MAX_SEARCH_LIMIT, RecordingIndex, RecordingRow
from recorder.journal import is_session_id, recording_path
from recorder.keyring import RecordingKeyring, new_key
from recorder.masking import TimedMask, recorded_masks, whole_recording
from recorder.render import render_journal
from recorder.rendering import found_masks
from recorder.seal import read_key, verify_journal
from recorder.storage import download_journal

PROGRESS_WIDTH = 40


def add_commands(commands: CommandGroups, common: argparse.ArgumentParser) -> None:
    recordings = commands.add_parser("recordings", help="session recordings").add_subparsers(
        dest="recordings_command", required=True, metavar="COMMAND")
    listing = recordings.add_parser("list", parents=[common], help="search recordings, newest first")
    listing.add_argument("--user", metavar="U", help="only this user's sessions")
    listing.add_argument("--target", metavar="T", help="only sessions to this target")
    listing.add_argument("--since", metavar="ISO", help="only sessions started at or after this time or date")
    listing.add_argument("--json", action="store_true", help="one JSON object per recording and line")
    listing.set_defaults(handler=lambda args: recordings_list_command(load_config(args.config), args.user,
                                                                      args.target, args.since, args.json))
    render = recordings.add_parser("render", parents=[common], help="render one recording to an MP4 video")
    render.add_argument("id", metavar="ID")
    render.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.mp4")
    render.set_defaults(handler=lambda args: render_command(load_config(args.config), args.id, args.output))
    verify = recordings.add_parser("verify", parents=[common], help="check a recording against its seal")
    verify.add_argument("id", metavar="ID")
    verify.set_defaults(handler=lambda args: verify_command(load_config(args.config), args.id))
    keys = recordings.add_parser("keys", parents=[common],
                                 help="list the recording keys (storage.recording_keys): id, fingerprint, current")
    keys.set_defaults(handler=lambda args: keys_command(load_config(args.config)))
    adding = recordings.add_parser("new-key", parents=[common],
                                   help="add a recording key (storage.recording_keys) that encrypts new recordings")
    adding.set_defaults(handler=lambda args: new_key_command(load_config(args.config)))
    retention.add_commands(recordings, common)


def _human_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


async def _list_recordings(config: Config, user: str | None, target: str | None,
                           since: datetime | None) -> list[RecordingRow]:
    store = await open_current_store(config.storage.database)
    try:
        return await RecordingIndex(store, None).search(user=user, target=target, since=since, limit=MAX_SEARCH_LIMIT)
    finally:
        await store.close()


def recordings_list_command(config: Config, user: str | None, target: str | None, since: str | None,
                            as_json: bool) -> int:
    """``deskgate recordings list``: newest first; one JSON object per line with ``--json``."""
    try:
        since_time = parse_time(since) if since else None
    except ValueError as exc:
        print(f"deskgate: --since: {exc}", file=sys.stderr)
        return 1
    rows = asyncio.run(_list_recordings(config, user, target, since_time))
    if as_json:
        for row in rows:
            print(json.dumps({**row.to_json(), "path": row.path, "sha256": row.sha256, "node": row.node}))
        return 0
    if not rows:
        print("no recordings match")
        return 0
    table = [("ID", "STARTED", "DURATION", "USER", "SOURCE", "TARGET", "BYTES", "VIDEO", "END")]
    table += [(row.id, row.started.strftime("%Y-%m-%d %H:%M:%SZ"), _human_duration(row.duration), row.user,
               row.source, row.target, str(row.bytes), row.video_state.value,
               row.end_reason if row.end_reason is not None else "(live or torn)") for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    return 0



def _journal(config: Config, recording_id: str) -> Path | None:
    """The journal of ``recording_id``, or None (with a message) when the id is malformed or unknown."""
    try:
        path = recording_path(config.storage.recordings, recording_id)
    except ValueError:
        print(_("deskgate: {id} is not a recording id (e.g. 20261125T080000Z-1a2b3c4d); see deskgate recordings list",
                id=repr(recording_id)), file=sys.stderr)
        return None
    if not path.is_file():
        print(_("deskgate: no recording {id} under {path}", id=recording_id, path=config.storage.recordings),
              file=sys.stderr)
        return None
    return path


async def _found_masks(config: Config, recording_id: str) -> tuple[TimedMask, ...]:
    """The personal data found on the recording's screen, as masks."""
    store = await open_current_store(config.storage.database)
    try:
        return await found_masks(RecordingIndex(store, None), recording_id)
    finally:
        await store.close()


async def _download(config: Config, recording_id: str) -> None:
    """Copy a recording from the bucket to the spool, where the commands read it."""
    async with recorder_storage(config, read_key(config.storage.recording_key_file)) as remote:
        if remote is not None:
            await download_journal(remote.storage, recording_id, recording_path(remote.spool, recording_id))


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn only when it moves."""

    def __init__(self) -> None:
        self._shown = -1
        self._started = time.monotonic()

    def __call__(self, fraction: float) -> None:
        filled = int(fraction * PROGRESS_WIDTH)
        percent = int(fraction * 100)
        if percent == self._shown:
            return
        self._shown = percent
        bar = "#" * filled + "-" * (PROGRESS_WIDTH - filled)
        print(f"\rrendering [{bar}] {percent:3d}%  {time.monotonic() - self._started:5.1f} s",
              end="", file=sys.stderr, flush=True)


def render_command(config: Config, recording_id: str, output: Path) -> int:
    """Render one recording to an MP4 file, with a progress bar and the realtime factor at the end."""
    if config.storage.s3 is not None and is_session_id(recording_id):
        asyncio.run(_download(config, recording_id))
    journal = _journal(config, recording_id)
    if journal is None:
        return 1
    load_keyring(config, create=False)
    if output.suffix.lower() != ".mp4":
        print(f"deskgate: -o {output}: the video is H.264 in MP4; name the file *.mp4", file=sys.stderr)
        return 1
    try:
        # an export: masked like the player's video (the journaled regions, and what the screen text found)
        masks = (*whole_recording(recorded_masks(journal)), *asyncio.run(_found_masks(config, recording_id)))
        result = render_journal(journal, output, progress=_ProgressBar(), masks=masks,
                                max_fps=config.storage.export_fps)
    except RecordingError as exc:
        print(f"\ndeskgate: cannot render {recording_id}: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    print(f"{output}: {result.duration:.1f} s of video, {result.frames} frames, rendered in "
          f"{result.wall_seconds:.1f} s ({result.realtime_factor:.1f}x realtime)")
    if result.error is not None:
        print(f"deskgate: the video stops early: {result.error}", file=sys.stderr)
        return 1
    return 0


def verify_command(config: Config, recording_id: str) -> int:
    """Check one recording against its seal: exit 0 when intact, 1 saying why when not, 3 when retention deleted it."""
    deleted = retention.deleted_message(config, recording_id) if is_session_id(recording_id) else None
    if deleted is not None:
        return deleted
    if config.storage.s3 is not None and is_session_id(recording_id):
        asyncio.run(_download(config, recording_id))
    journal = _journal(config, recording_id)
    if journal is None:
        return 1
    key = read_key(config.storage.recording_key_file)
    load_keyring(config, create=False)
    try:
        verify_journal(journal, key)
    except IntegrityError as exc:
        print(f"{recording_id}: FAILED: {exc}")
        return 1
    print(f"{recording_id}: OK (sealed with this gateway's recording key; content and size match)")
    return 0


def keys_command(config: Config) -> int:
    """List the recording keys, oldest first, marking the current one; compare the fingerprints between nodes."""
    directory = config.storage.recording_keys
    try:
        keyring = RecordingKeyring.load(directory, encrypt=config.storage.encrypt_recordings, create=False)
    except (RecordingKeyError, OSError) as exc:
        print(_("deskgate: cannot read the recording keys: {error}", error=exc), file=sys.stderr)
        return 1
    if not keyring.keys:
        print(_("no recording keys in {directory}: the gateway creates the first one when it starts, or run "
                "deskgate recordings new-key", directory=directory))
        return 0
    for key in keyring.keys:
        mark = _("current: encrypts new recordings") if key is keyring.current else ""
        print(f"{key.key_id}  {key.fingerprint}  {mark}".rstrip())
    if keyring.current is None:
        print(_("storage.encrypt_recordings is off: new recordings are not encrypted"))
    return 0


def new_key_command(config: Config) -> int:
    """Add a recording key that sorts after the others: recordings started after the next restart use it."""
    directory = config.storage.recording_keys
    try:
        key = new_key(directory)
    except (RecordingKeyError, OSError) as exc:
        print(_("deskgate: cannot add a recording key: {error}", error=exc), file=sys.stderr)
        return 1
    print(_("added the recording key {key} to {directory}. Copy it to every gateway node and restart them: new "
            "recordings are encrypted with it. Keep the older keys: the recordings they encrypted need them.",
            key=key.key_id, directory=directory))
    if not config.storage.encrypt_recordings:
        print(_("storage.encrypt_recordings is off: new recordings are not encrypted"))
    return 0
