"""The aiohttp application: factory, lifecycle, and the two listeners (web and metrics).

Both listeners admit connections through :mod:`gateway.web.listener`: the web listener
lets in ``network.allow`` and ``network.trusted_proxies``; the metrics listener, when it
is not on loopback, ``network.metrics_allow``; both bound their connections and the time
a request may take to arrive (``network.header_timeout`` and its siblings).

Lifecycle, in ``app.cleanup_ctx`` order: the disks' free space (:mod:`gateway.disk_space`), the database (and the audit log and recording
index on it), the live-session directory and the notice board with its delivery loop
(:func:`supervision_context`), authentication and the watcher that keeps sessions honest
(:mod:`gateway.web.auth_context`), hot reload and the watcher that keeps live sessions within the
policies in force (:mod:`gateway.web.reloading`), then the recordings, built by the factory ``create_app``
was given (:func:`~gateway.recording_service.recording_service` unless a test or the bench
hands it another), and last the native SSH listener when ``listen.ssh`` is set (:mod:`gateway.ssh.listener`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import uvloop
from aiohttp import web

from base import __version__
from base.metrics import Metrics
from gateway.audit import AuditLog, CheckpointWriter
from gateway.config import Address, Config
from gateway.disk_space import DiskSpace
from gateway.drain import DRAIN, Drain, drain
from gateway.journals import RecordingContext, RecordingsFactory
from gateway.notices import NoticeBoard
from gateway.reach import JumpHosts
from gateway.recording_service import load_text_keys, recording_service
from gateway.reload import remove_pid_file, status_path, write_pid_file
from gateway.rfb import boundary_impl
from gateway.schema import open_current_store
from gateway.session_directory import SessionDirectory
from gateway.sessions import SessionRegistry
from gateway.settings import LiveSettings, Settings
from gateway.ssh.listener import ssh_listener_context
from gateway.terminal_tail import TERMINAL_TAILS, TerminalTails
from gateway.web import (
    account_routes,
    admin_routes,
    admin_views,
    auth_routes,
    desktop_routes,
    live_routes,
    notice_routes,
    portal_routes,
    recording_routes,
    session_routes,
    storage_routes,
    terminal_routes,
    unmask_routes,
)
from gateway.web.auth_context import auth_context
from gateway.web.keys import (
    AUDIT,
    CLOCK,
    DISK_SPACE,
    JUMP_HOSTS,
    LIVE_SESSIONS,
    METRICS,
    NOTICES,
    RECORDING_INDEX,
    RECORDINGS,
    SESSION_DIRECTORY,
    SETTINGS,
    STARTED,
    STORE,
)
from gateway.web.listener import ConnectionGate, GuardedSite, ListenerPolicy, RefusalReporter
from gateway.web.pages import STATIC, renderer
from gateway.web.reloading import RELOADER, reload_context
from gateway.web.security import (
    DENIAL_AUDITOR,
    PENDING_AUDITS,
    DenialAuditor,
    connection_refusals,
    csrf_protection,
    finish_pending_audits,
    known_host,
    network_allow_list,
    security_headers,
    web_session,
)
from recorder.index import RecordingIndex

log = logging.getLogger(__name__)


async def database_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry: open ``storage.database`` at start-up, close it at shutdown.

    While it is open, the audit chain's head is checkpointed outside it: at start-up, at
    intervals, and at shutdown (after the other contexts have recorded their last events).
    """
    store = await open_current_store(app[SETTINGS].current.config.storage.database)
    try:
        app[STORE] = store
        app[RECORDING_INDEX] = RecordingIndex(store, load_text_keys(app[SETTINGS].current.config))
        app[AUDIT] = AuditLog(store)
        async with CheckpointWriter.from_config(app[AUDIT], app[SETTINGS].current.config.audit, app[METRICS]).running():
            yield
    finally:
        await store.close()


async def supervision_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry after the database: the live-session directory and the notice board."""
    store = app[STORE]
    app[SESSION_DIRECTORY] = SessionDirectory(store)
    board = app[NOTICES] = NoticeBoard(store, app[METRICS])
    delivery = asyncio.create_task(board.run(), name="deskgate-notice-delivery")
    try:
        yield
    finally:
        delivery.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivery
        await board.close()


async def disk_space_context(app: web.Application) -> AsyncIterator[None]:
    """``app.cleanup_ctx`` entry: read the disks' free space before serving, then every few seconds until shutdown."""
    disk_space = app[DISK_SPACE]
    await disk_space.refresh(app[SETTINGS].current.config)
    watcher = asyncio.create_task(disk_space.run(app[SETTINGS]), name="deskgate-disk-space")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


def recordings_context(recordings: RecordingsFactory) -> Callable[[web.Application], AsyncIterator[None]]:
    """``app.cleanup_ctx`` entry after the database: the recordings ``recordings`` builds, until shutdown."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        built = recordings(RecordingContext(app[SETTINGS].current.config, app[METRICS], app[RECORDING_INDEX], app[AUDIT]))
        async with built as service:
            app[RECORDINGS] = service
            yield

    return context


def create_app(config: Config, metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
               recordings: RecordingsFactory = recording_service) -> web.Application:
    """The gateway's web application, with all state built from ``config``.

    ``clock`` times authentication; ``recordings`` builds the sessions' recordings at start-up.
    """
    app = web.Application(middlewares=[security_headers, network_allow_list, known_host, web_session,
                                       csrf_protection], client_max_size=64 * 1024)
    metrics = metrics or Metrics()
    metrics.build_info.info({"version": __version__, "rfb_framer": boundary_impl.IMPLEMENTATION})
    app[SETTINGS] = LiveSettings(Settings.from_config(config))
    app[METRICS] = metrics
    app[CLOCK] = clock
    app[STARTED] = clock()
    app[DENIAL_AUDITOR] = DenialAuditor()
    app[PENDING_AUDITS] = set()
    app[LIVE_SESSIONS] = SessionRegistry(metrics)
    app[DISK_SPACE] = DiskSpace(metrics)
    app[DRAIN] = Drain()
    app[JUMP_HOSTS] = JumpHosts(metrics)
    app[TERMINAL_TAILS] = TerminalTails()
    renderer()  # reads the catalogs now: a broken one stops the start, not the first page
    app.add_routes(auth_routes.routes)
    app.add_routes(portal_routes.routes)
    app.add_routes(desktop_routes.routes)
    app.add_routes(terminal_routes.routes)
    app.add_routes(recording_routes.routes)
    app.add_routes(unmask_routes.routes)
    app.add_routes(live_routes.routes)
    app.add_routes(storage_routes.routes)
    app.add_routes(session_routes.routes)
    app.add_routes(notice_routes.routes)
    app.add_routes(account_routes.routes)
    app.add_routes(admin_routes.routes)
    app.add_routes(admin_views.routes)
    app.cleanup_ctx.append(disk_space_context)
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(supervision_context)
    app.cleanup_ctx.append(auth_context)
    app.cleanup_ctx.append(reload_context)
    app.cleanup_ctx.append(recordings_context(recordings))
    app.cleanup_ctx.append(ssh_listener_context)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.on_shutdown.append(_end_live_sessions)
    app.on_shutdown.append(finish_pending_audits)
    app.on_cleanup.append(_close_jump_hosts)
    return app


async def _close_jump_hosts(app: web.Application) -> None:
    await app[JUMP_HOSTS].close()


async def _end_live_sessions(app: web.Application) -> None:
    registry = app[LIVE_SESSIONS]
    for session in registry:
        registry.terminate(session.id, "the gateway is shutting down")
    app[NOTICES].end_all()  # the pages' streams, which would otherwise hold the shutdown up


def create_metrics_app(metrics: Metrics) -> web.Application:
    """The metrics listener: ``GET /metrics`` only."""

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    return app


@dataclass(slots=True)
class RunningGateway:
    """A started gateway: its application, runners and bound addresses."""

    app: web.Application
    runners: tuple[web.AppRunner, ...]
    url: str
    metrics_url: str

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls.enabled:
        return None
    assert config.tls.cert is not None and config.tls.key is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context


async def _start_site(app: web.Application, address: Address, gate: ConnectionGate,
                      ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = GuardedSite(runner, address.host, address.port, gate, ssl_context)
    await site.start()
    return runner, site.port


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def listener_policies(config: Config) -> tuple[ListenerPolicy, ListenerPolicy]:
    """Whom the web and the metrics listener admit (a metrics listener on loopback admits any local peer)."""
    network = config.network
    web_policy = ListenerPolicy("web", network.allow, network.trusted_proxies, network.connections)
    metrics_peers = None if config.listen.metrics.is_loopback else network.metrics_peers
    return web_policy, ListenerPolicy("metrics", metrics_peers, (), network.connections)


def listener_gates(config: Config, metrics: Metrics, report: RefusalReporter) -> tuple[ConnectionGate, ConnectionGate]:
    """The admission of the web and the metrics listener, as :func:`listener_policies` says."""
    web_policy, metrics_policy = listener_policies(config)
    return ConnectionGate(web_policy, metrics, report), ConnectionGate(metrics_policy, metrics, report)


async def start_gateway(config: Config, metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                        recordings: RecordingsFactory = recording_service) -> RunningGateway:
    """Start both listeners (port 0 picks a free port) and return the running gateway (see :func:`create_app`)."""
    app = create_app(config, metrics, clock, recordings)
    web_gate, metrics_gate = listener_gates(config, app[METRICS], connection_refusals(app))
    http, bound_http = await _start_site(app, config.listen.http, web_gate, _ssl_context(config))
    metrics_runner, bound_metrics = await _start_site(create_metrics_app(app[METRICS]), config.listen.metrics,
                                                      metrics_gate)

    def follow(settings: Settings) -> None:  # new connections are admitted by the reloaded network section
        web_gate.policy, metrics_gate.policy = listener_policies(settings.config)

    app[RELOADER].on_replace.append(follow)
    scheme = "https" if config.tls.enabled else "http"
    return RunningGateway(app, (http, metrics_runner), _url(scheme, config.listen.http.host, bound_http),
                          _url("http", config.listen.metrics.host, bound_metrics) + "/metrics")


async def wait_for_stop_signal() -> None:
    """Return when the process gets SIGINT or SIGTERM (what stops a foreground server)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def freeze_start_up_heap() -> None:
    """Leave what start-up built (modules, the app, the database's metadata) out of every later collection.

    The cyclic garbage collector's full pass walks every object the process holds; after start-up
    that is hundreds of thousands of objects that live until exit, and the pass stalled every
    session for 60-90 ms at a time (bench: p99 key-echo latency with 150 call-center sessions).
    Frozen, they are never walked again; sessions' objects still are.
    """
    gc.collect()
    gc.freeze()


async def serve_until_signalled(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then drain (:mod:`gateway.drain`); SIGHUP reloads the config, answering in the
    status file by the pid file."""
    gateway = await start_gateway(config)
    freeze_start_up_heap()
    reloader = gateway.app[RELOADER]
    reloader.status_file = status_path(config.storage.pid_file)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)
    write_pid_file(config.storage.pid_file)
    log.info("gateway listening", extra={"ctx": {"url": gateway.url, "metrics": gateway.metrics_url,
                                                 "pid_file": str(config.storage.pid_file),
                                                 "rfb_framer": boundary_impl.IMPLEMENTATION}})
    if boundary_impl.FALLBACK_REASON:
        log.warning("the RFB framer runs interpreted", extra={"ctx": {"reason": boundary_impl.FALLBACK_REASON}})
    try:
        await wait_for_stop_signal()
        await drain(gateway.app, gateway.app[SETTINGS].current.config.listen.drain_timeout)
    finally:
        log.info("gateway stopping")
        remove_pid_file(config.storage.pid_file)
        await gateway.stop()


def run_gateway(config: Config) -> None:
    """Run the gateway in the foreground until SIGINT or SIGTERM (SIGHUP reloads its config), on uvloop.

    uvloop, not the default loop: with many sessions its cheaper socket and callback
    handling keeps tail latency down (bench: p99 added latency at 60 office sessions on
    one core, 16-44 ms on the default loop, 5-9 ms on uvloop).
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_until_signalled(config))
