"""Every Prometheus metric of the gateway, defined in one place.

Each gateway owns a :class:`Metrics` with its own registry, so that tests can run
several gateways in one process; the metrics listener serves that registry.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from base import __version__

PREFIX = "deskgate"
#: ``recording_failures_total{reason}``: recorder.errors.FailureReason, and create_failed (the journal not created).
RECORDING_FAILURE_REASONS = ("disk_full", "io_error", "file_too_large", "permission", "create_failed")


class Metrics:
    """The gateway's metrics (names as in DESIGN.md §3)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge(
            f"{PREFIX}_sessions_active", "Proxied sessions open now.", ["protocol"], registry=r
        )
        self.sessions_total = Counter(
            f"{PREFIX}_sessions_total",
            "Proxied sessions by how they ended (or were refused).",
            ["protocol", "outcome"],
            registry=r,
        )
        self.session_duration_seconds = Histogram(
            f"{PREFIX}_session_duration_seconds",
            "How long proxied sessions lasted.",
            buckets=(10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200),
            registry=r,
        )
        self.idle_logouts_total = Counter(
            f"{PREFIX}_idle_logouts_total", "Sessions ended because the operator gave no input for too long.",
            registry=r,
        )
        self.clipboard_blocked_total = Counter(
            f"{PREFIX}_clipboard_blocked_total",
            "Clipboard transfers dropped by policy; direction is to_remote or to_local.",
            ["direction"],
            registry=r,
        )
        self.proxy_bytes_total = Counter(
            f"{PREFIX}_proxy_bytes_total",
            "Bytes forwarded by the proxy; direction is to_target or to_client.",
            ["protocol", "direction"],
            registry=r,
        )
        self.auth_attempts_total = Counter(
            f"{PREFIX}_auth_attempts_total", "Login attempts by method and result.", ["method", "result"], registry=r
        )
        self.auth_duration_seconds = Histogram(
            f"{PREFIX}_auth_duration_seconds",
            "Time a password backend took to accept or refuse a login.",
            ["backend"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.ldap_up = Gauge(
            f"{PREFIX}_ldap_up", "1 when the last LDAP login could use the directory, 0 when it could not.", registry=r
        )
        self.ip_denied_total = Counter(
            f"{PREFIX}_ip_denied_total", "Requests refused because the source network is not allowed.", registry=r
        )
        self.policy_denied_total = Counter(
            f"{PREFIX}_policy_denied_total", "Session requests refused by access policy.", registry=r
        )
        self.recording_bytes_total = Counter(
            f"{PREFIX}_recording_bytes_total", "Bytes written to session recordings (journals).", registry=r
        )
        self.recording_failures_total = Counter(
            f"{PREFIX}_recording_failures_total",
            "Sessions refused or ended because their recording could not be written.",
            ["reason"],
            registry=r,
        )
        self.render_queue_length = Gauge(
            f"{PREFIX}_render_queue_length", "Recordings waiting for, or being, rendered to video.", registry=r
        )
        self.render_seconds = Histogram(
            f"{PREFIX}_render_seconds",
            "Wall-clock time to render one recording to video.",
            buckets=(1, 5, 15, 60, 300, 900, 3600),
            registry=r,
        )
        # issue 16, render workers sized from the measured speed: CPU seconds per session second rendered
        self.render_workers = Gauge(
            f"{PREFIX}_render_workers", "Processes rendering recordings to video on this node.", registry=r
        )
        self.render_cpu_seconds_total = Counter(
            f"{PREFIX}_render_cpu_seconds_total", "CPU time the render workers spent rendering recordings to video.",
            registry=r,
        )
        self.render_video_seconds_total = Counter(
            f"{PREFIX}_render_video_seconds_total", "Seconds of session rendered to video.", registry=r
        )
        self.build_info = Info(f"{PREFIX}_build", "Version of the running gateway.", registry=r)
        self.build_info.info({"version": __version__})
        for protocol in ("vnc",):
            self.sessions_active.labels(protocol=protocol).set(0)
        # issue 9, sign-in hardening (auth/checkgate.py): the bound on password checks in flight
        self.password_checks_running = Gauge(
            f"{PREFIX}_password_checks_running", "Password checks (argon2id, LDAP binds) running now.", registry=r
        )
        self.password_checks_waiting = Gauge(
            f"{PREFIX}_password_checks_waiting", "Logins waiting for a password check to start.", registry=r
        )
        self.password_checks_refused_total = Counter(
            f"{PREFIX}_password_checks_refused_total",
            "Logins refused (503) because too many password checks were running and waiting; "
            "reason is queue_full or wait_timeout.",
            ["reason"],
            registry=r,
        )
        # listeners: connections refused on arrival or cut before their request arrived; Host checks
        self.connections_open = Gauge(
            f"{PREFIX}_connections_open", "Connections a listener (web or metrics) holds now.", ["listener"], registry=r
        )
        self.connections_refused_total = Counter(
            f"{PREFIX}_connections_refused_total",
            "Connections refused on arrival, before anything was read; reason is network, per_source or capacity.",
            ["listener", "reason"],
            registry=r,
        )
        self.connections_cut_total = Counter(
            f"{PREFIX}_connections_cut_total",
            "Connections closed because a request's headers or body did not arrive in time; reason is headers or body.",
            ["listener", "reason"],
            registry=r,
        )
        self.host_refused_total = Counter(
            f"{PREFIX}_host_refused_total",
            "Requests refused because their Host is not a name of the gateway (DNS rebinding).",
            registry=r,
        )
        # desktop sessions: a browser's input over the rate a person makes (issue 9)
        self.browser_throttled_seconds_total = Counter(
            f"{PREFIX}_browser_throttled_seconds_total",
            "Seconds the gateway stopped reading browsers that sent messages faster than the per-session limit.",
            registry=r,
        )
        self.pointer_moves_dropped_total = Counter(
            f"{PREFIX}_pointer_moves_dropped_total",
            "Pointer moves dropped because a browser sent them faster than the per-session limit.",
            registry=r,
        )
        # audit log anchoring (issue 9): checkpoints of the chain's head outside the database
        self.audit_checkpoints_total = Counter(
            f"{PREFIX}_audit_checkpoints_total",
            "Checkpoints of the audit chain's head by result: written, or failed (disk or database error).",
            ["result"],
            registry=r,
        )
        self.audit_chain_rollbacks_total = Counter(
            f"{PREFIX}_audit_chain_rollbacks_total",
            "Times a node found the audit event it last checkpointed gone or changed (tail cut, table rolled back).",
            registry=r,
        )
        # issue 10, supervision: live sessions on every node, ending them, and the notice channel to users' pages
        self.supervision_denied_total = Counter(
            f"{PREFIX}_supervision_denied_total",
            "Requests to list or end live sessions refused (no watch over the operator); action is list or end.",
            ["action"],
            registry=r,
        )
        self.sessions_end_requested_total = Counter(
            f"{PREFIX}_sessions_end_requested_total",
            "Live sessions a supervisor or administrator asked to end (the node holding each ends it).",
            registry=r,
        )
        self.notices_posted_total = Counter(
            f"{PREFIX}_notices_posted_total", "Notices posted to users' pages, by type.", ["type"], registry=r
        )
        self.notice_streams_open = Gauge(
            f"{PREFIX}_notice_streams_open", "Pages connected to this node's notice stream now.", registry=r
        )
        self.notice_streams_ended_total = Counter(
            f"{PREFIX}_notice_streams_ended_total",
            "Notice streams ended; reason is closed, signed_out, replaced (too many pages of one user), "
            "overflow (a page not reading) or shutdown.",
            ["reason"],
            registry=r,
        )
        # issue 10, recordings as a review tool: clip exports and the limits on review requests
        self.clip_exports_running = Gauge(
            f"{PREFIX}_clip_exports_running", "Clip exports queued or rendering on this gateway.", registry=r
        )
        self.clip_exports_total = Counter(
            f"{PREFIX}_clip_exports_total", "Clip exports finished; outcome is ready or failed.", ["outcome"],
            registry=r,
        )
        self.review_refused_total = Counter(
            f"{PREFIX}_review_refused_total",
            "Review requests refused by a limit; reason is clips_busy, clips_per_user, clips_unavailable "
            "or bookmarks_per_recording.",
            ["reason"],
            registry=r,
        )
        # issue 11, hot reload and time windows
        self.config_reloads_total = Counter(
            f"{PREFIX}_config_reloads_total",
            "Configuration reloads (SIGHUP, file change, deskgate config reload); result is ok or error "
            "(the file was refused and the old configuration stays in force).",
            ["result"],
            registry=r,
        )
        self.window_warnings_total = Counter(
            f"{PREFIX}_window_warnings_total",
            "Operators warned that their session's time window (a policy's hours) is about to close.",
            registry=r,
        )
        # issue 11, access: sign-outs by a desktop's limits, and one desktop per operator
        self.sign_outs_total = Counter(
            f"{PREFIX}_sign_outs_total",
            "Web sign-ins ended because a desktop they opened reached a limit; reason is idle_timeout or max_session.",
            ["reason"],
            registry=r,
        )
        self.sessions_refused_total = Counter(
            f"{PREFIX}_sessions_refused_total",
            "Desktops refused before they started; reason is in_use (a one-operator desktop in use), too_many "
            "(a shared one at its max_sessions), disk_full (recordings' or database's disk below storage.min_free) "
            "or draining (the node is stopping).",
            ["reason"],
            registry=r,
        )
        # issue 11, users and the admin console: administrators' changes, refusals, own password changes
        self.admin_actions_total = Counter(
            f"{PREFIX}_admin_actions_total",
            "Changes made through the admin console; action is user.add, user.disable, user.totp_reset, ...",
            ["action"],
            registry=r,
        )
        self.admin_denied_total = Counter(
            f"{PREFIX}_admin_denied_total", "Admin console requests refused: the caller is not an administrator.",
            registry=r,
        )
        self.password_changes_total = Counter(
            f"{PREFIX}_password_changes_total",
            "Users changing their own password; result is ok, wrong_password, refused or rate_limited.",
            ["result"],
            registry=r,
        )
        # issue 10, live view and the wall (gateway/live_view.py): viewers now, what they sent and was dropped, refusals
        self.live_viewers = Gauge(
            f"{PREFIX}_live_viewers", "Live views (and wall tiles) this node serves now.", registry=r
        )
        self.live_view_dropped_input_total = Counter(
            f"{PREFIX}_live_view_dropped_input_total",
            "Messages from live viewers dropped, never forwarded to the target; kind is key, pointer, cut_text or other.",
            ["kind"],
            registry=r,
        )
        self.live_view_refused_total = Counter(
            f"{PREFIX}_live_view_refused_total",
            "Live views refused; reason is not_watched, unknown_session, foreign_origin, sharing_refused or "
            "target_unavailable.",
            ["reason"],
            registry=r,
        )
        # issue 13, terminal sessions: SSH targets the gateway could not open a session on
        self.terminal_target_refusals_total = Counter(
            f"{PREFIX}_terminal_target_refusals_total",
            "Terminal sessions that did not reach their SSH target; reason is host_key (unknown or mismatched "
            "key), auth (the target refused the gateway's credentials) or unreachable.",
            ["reason"],
            registry=r,
        )
        # issue 13, jump hosts: connections opened to jump hosts, and the ones that could not be
        self.jump_host_connections_total = Counter(
            f"{PREFIX}_jump_host_connections_total",
            "SSH connections the gateway opened to jump hosts (one is shared by every session through it).",
            registry=r,
        )
        self.jump_host_failures_total = Counter(
            f"{PREFIX}_jump_host_failures_total",
            "Connections to a jump host that failed; reason is host_key, auth or unreachable.",
            ["reason"],
            registry=r,
        )

        # issue 14, recordings in object storage, jobs and retention
        self.recording_upload_lag_seconds = Gauge(
            f"{PREFIX}_recording_upload_lag_seconds",
            "Longest time a live recording's durable bytes have waited for upload to object storage.", registry=r
        )
        self.recording_upload_failures_total = Counter(
            f"{PREFIX}_recording_upload_failures_total", "Uploads to object storage that failed (each is retried).",
            registry=r,
        )
        self.recording_upload_bytes_total = Counter(
            f"{PREFIX}_recording_upload_bytes_total", "Recording bytes uploaded to object storage.", registry=r
        )
        self.jobs_queued = Gauge(
            f"{PREFIX}_jobs_queued", "Recorder jobs (index, recover) waiting in the database, as last seen.",
            registry=r,
        )
        self.jobs_done_total = Counter(
            f"{PREFIX}_jobs_done_total", "Recorder jobs this node finished; outcome is ok or failed.",
            ["kind", "outcome"], registry=r,
        )
        self.recordings_deleted_total = Counter(
            f"{PREFIX}_recordings_deleted_total", "Recordings deleted by retention.", registry=r
        )

        # issue 14, disk that warns before it fails (gateway/disk_space.py): free space of recordings and database
        self.disk_free_bytes = Gauge(
            f"{PREFIX}_disk_free_bytes", "Free bytes on the disk of a volume: recordings, or database (SQLite).",
            ["volume"], registry=r,
        )
        self.disk_size_bytes = Gauge(
            f"{PREFIX}_disk_size_bytes", "Size in bytes of the disk of a volume: recordings, or database (SQLite).",
            ["volume"], registry=r,
        )
        self.disk_min_free_bytes = Gauge(
            f"{PREFIX}_disk_min_free_bytes",
            "storage.min_free in bytes for a volume: below it new sessions are refused (reason disk_full).",
            ["volume"], registry=r,
        )
        # issue 14, dashboards and alerts (deploy/): LDAP configured or not, and known label values at 0
        self.ldap_configured = Gauge(
            f"{PREFIX}_ldap_configured", "1 when auth.ldap is configured (deskgate_ldap_up means something), else 0.",
            registry=r,
        )
        # issue 15, encryption at rest (recorder/keyring.py): recordings or exports whose recording key is missing
        self.recording_key_errors_total = Counter(
            f"{PREFIX}_recording_key_errors_total",
            "Recordings that could not be opened for lack of their recording key (or altered): what=journal|export.",
            ["what"], registry=r,
        )
        for what in ("journal", "export"):
            self.recording_key_errors_total.labels(what=what)
        for reason in ("in_use", "too_many", "disk_full", "draining"):  # so that rate() sees the first one, and panels a series
            self.sessions_refused_total.labels(reason=reason)
        for reason in ("idle_timeout", "max_session"):
            self.sign_outs_total.labels(reason=reason)
        for reason in RECORDING_FAILURE_REASONS:
            self.recording_failures_total.labels(reason=reason)
        # issue 13, native SSH listener (gateway/ssh/): what signed-in SSH clients asked for and were refused
        self.ssh_refusals_total = Counter(
            f"{PREFIX}_ssh_refusals_total",
            "Requests of native SSH clients the gateway refused: direct_tcpip, tcpip_forward, direct_streamlocal, "
            "streamlocal_forward, agent, x11, exec, subsystem (sftp), session (a second one on a connection).",
            ["kind"], registry=r,
        )
        # issue 15, on-screen text and personal data (recorder/screen_jobs.py): what OCR read and found, and its cost
        self.pii_detected_total = Counter(
            f"{PREFIX}_pii_detected_total", "Personal data found in recordings (on screen or typed), by kind.",
            ["kind"], registry=r,
        )
        self.ocr_session_seconds_total = Counter(
            f"{PREFIX}_ocr_session_seconds_total", "Seconds of recorded sessions whose screen text was read.",
            registry=r,
        )
        self.ocr_cpu_seconds_total = Counter(
            f"{PREFIX}_ocr_cpu_seconds_total",
            "CPU seconds spent reading screen text (workers and Tesseract); session over CPU seconds is the "
            "speed in x realtime per core.", registry=r,
        )
        for kind in ("card", "my_number", "phone_jp"):
            self.pii_detected_total.labels(kind=kind)
        # issue 15, masked regions and keystrokes kept only as far as policy allows (recorder/masking.py, gateway/unmask.py)
        self.unmask_requests_total = Counter(
            f"{PREFIX}_unmask_requests_total",
            "Requests to see a recording unmasked (with a reason): result allowed or denied.",
            ["result"], registry=r,
        )
        self.keys_withheld_total = Counter(
            f"{PREFIX}_keys_withheld_total",
            "Key presses journaled as counts only under record_input full: why masked_region or card_number.",
            ["why"], registry=r,
        )
        for result in ("allowed", "denied"):
            self.unmask_requests_total.labels(result=result)
        for why in ("masked_region", "card_number"):
            self.keys_withheld_total.labels(why=why)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
