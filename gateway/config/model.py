"""The configuration as the rest of the gateway sees it: frozen objects, built once by :mod:`gateway.config.schema`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from auth.netacl import ProxyHeader
from auth.options import AuthConfig
from base.yamlnodes import IPNetwork
from gateway.config.masks import MaskRule
from gateway.config.sizes import DEFAULT_MIN_FREE, MinFree
from gateway.policy import Policy
from recorder.jobs import LEASE_SECONDS
from recorder.pii import BUILTIN_KINDS
from recorder.render import DEFAULT_MAX_FPS
from recorder.storage import S3Location
from recorder.upload import SEGMENT_BYTES, SEGMENT_SECONDS, UPLOAD_DEADLINE


@dataclass(frozen=True, slots=True)
class Address:
    """A listening address; port 0 asks the system for a free port."""

    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PublicURL:
    """Where browsers reach the gateway (``listen.public_url``), e.g. through a TLS-terminating proxy."""

    scheme: str  # http or https
    host: str  # lowercase; an IPv6 address without brackets
    port: int

    @property
    def origin(self) -> str:
        """As browsers write it in ``Origin``: no default port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}" if self.port == default else f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    http: Address
    metrics: Address
    public_url: PublicURL | None = None  # None: browsers use the listen address (or localhost on loopback)
    drain_timeout: float = 20.0  # on SIGTERM, how long live sessions may go on before they are ended
    ssh: Address | None = None  # the native SSH listener (gateway/ssh/); None: off
    ssh_host_key: Path = Path("var/ssh_host_ed25519_key")  # its host key, created on first start if missing


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How many connections a listener holds and how long a request may take to arrive."""

    header_timeout: float = 10.0  # from accept, or from the end of the previous response
    body_timeout: float = 30.0  # from the end of the headers
    max_connections: int = 1024  # per listener
    max_connections_per_source: int = 256  # per IPv4 address or IPv6 /64; trusted proxies are not bounded


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert: Path | None
    key: Path | None

    @property
    def enabled(self) -> bool:
        return self.cert is not None and self.key is not None


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    allow: tuple[IPNetwork, ...]
    trusted_proxies: tuple[IPNetwork, ...]
    proxy_header: ProxyHeader = ProxyHeader.X_FORWARDED_FOR  # believed only from trusted_proxies
    metrics_allow: tuple[IPNetwork, ...] | None = None  # peers of an exposed metrics listener; None: allow
    connections: ConnectionLimits = ConnectionLimits()

    @property
    def metrics_peers(self) -> tuple[IPNetwork, ...]:
        return self.allow if self.metrics_allow is None else self.metrics_allow


@dataclass(frozen=True, slots=True)
class StorageConfig:
    recordings: Path
    database: str
    fsync_interval: float
    recording_key_file: Path  # HMAC key that seals finished recordings; created (0600) if missing
    pid_file: Path  # where ``deskgate serve`` writes its process id (``deskgate config reload`` signals it)
    # Object storage (issue 14): with ``s3`` set, ``recordings`` is the local spool the journals are written to first
    s3: S3Location | None = None
    segment_bytes: int = SEGMENT_BYTES  # upload a segment once this many bytes wait...
    segment_interval: float = SEGMENT_SECONDS  # ...or once this many seconds have passed
    upload_deadline: float = UPLOAD_DEADLINE  # bytes waiting longer end the session, fail-closed
    retention: float | None = None  # seconds recordings are kept; None: forever
    job_lease: float = LEASE_SECONDS  # a recorder job (a live recording's recovery) is another node's after this
    spool_keep: float = 3600.0  # local copies of recordings sealed in the bucket are deleted after this
    workers: bool = True  # ``serve`` also claims recorder jobs (false: leave them to ``deskgate worker``)
    min_free: MinFree = DEFAULT_MIN_FREE  # new sessions are refused while the recordings' or database's disk has less
    export_fps: int = DEFAULT_MAX_FPS  # frames a second at most in rendered videos; the journal keeps every update
    # Encryption at rest (issue 15): key files <id>.key, the last by name wraps new recordings' data keys
    recording_keys: Path = Path("var/recording-keys")
    encrypt_recordings: bool = True  # false: journals get CRC-32 batches only, exports stay plain
    writer_cpus: tuple[int, ...] = ()  # CPUs the journal writer threads are pinned to; empty: not pinned
    render_workers: int | None = None  # processes rendering videos; None: half the CPUs this process may use


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Checkpoints that anchor the audit chain's head outside the database (``audit:``)."""

    checkpoint_key_file: Path  # HMAC key of the checkpoints, shared by every node; created (0600) if missing
    checkpoint_dir: Path  # one append-only file per node: <node>.checkpoints
    checkpoint_interval: float  # seconds between checkpoints while events are being recorded
    node: str  # this node's name in its checkpoints and its file's name


@dataclass(frozen=True, slots=True)
class UIConfig:
    """The pages' defaults for a site (``ui:``): a browser's own language and a remembered choice come first."""

    language: str = "en"  # ja | en: for browsers that ask for neither
    timezone: str = "UTC"  # IANA name: the zone pages show dates and times in (Asia/Tokyo by default for ja)


#: ``known_hosts: none`` on an ssh target: its host key is not checked (logged loudly at every session).
KNOWN_HOSTS_UNCHECKED = "none"


@dataclass(frozen=True, slots=True)
class LiveViewConfig:
    """How often the gateway asks a target for updates for a live viewer (``live_view:``)."""

    interval: float = 0.1  # seconds between two update requests of a live view (/live/{id})
    tile_interval: float = 2.0  # of a wall tile (/wall)
    tile_quality: int = 1  # the Tight JPEG quality (0-9) a tile asks the target for


@dataclass(frozen=True, slots=True)
class OcrConfig:
    """Reading recordings' screen text (``ocr:``), in recorder worker processes."""

    enabled: str = "auto"  # auto (on when Tesseract reads the languages) | on | off
    languages: str = "jpn+eng"  # Tesseract's language names, joined by +
    workers: int = 1  # processes (cores) reading at once on this node
    interval: float = 1.0  # seconds of session between two looks at what changed


@dataclass(frozen=True, slots=True)
class PiiConfig:
    """Personal data looked for in screen text and typed text (``pii:``)."""

    kinds: tuple[str, ...] = BUILTIN_KINDS  # built-in kinds: card, my_number, phone_jp
    patterns: tuple[tuple[str, str], ...] = ()  # (kind, regular expression) of the site's own kinds


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    protocol: str
    host: str
    port: int
    password_file: Path | None
    username: str | None
    key_file: Path | None
    max_sessions: int | None = 1  # operators' sessions at once (live viewers aside); None: no limit
    #: ssh targets: the known-hosts file that vouches for the target's host key; None: the gateway
    #: user's ``~/.ssh/known_hosts``; :data:`KNOWN_HOSTS_UNCHECKED` (``known_hosts: none``): no check.
    known_hosts: Path | str | None = None
    via: str | None = None  # the ssh target (a jump host) this target is reached through
    #: vnc targets: the encoding put first in the browser's SetEncodings when it lists it (None: the browser's order)
    prefer_encoding: int | None = None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    listen: ListenConfig
    tls: TLSConfig
    network: NetworkConfig
    auth: AuthConfig
    storage: StorageConfig
    targets: Mapping[str, Target]
    policies: tuple[Policy, ...]
    audit: AuditConfig
    ui: UIConfig = UIConfig()
    live_view: LiveViewConfig = LiveViewConfig()
    ocr: OcrConfig = OcrConfig()
    pii: PiiConfig = PiiConfig()
    masks: tuple[MaskRule, ...] = ()  # rectangles hidden from supervisors, per target pattern
