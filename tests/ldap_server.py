"""A real OpenLDAP ``slapd`` for functional tests: temp dir, free loopback port, StartTLS.

    with SlapdServer(tmp_path) as server:
        server.url          # ldap://127.0.0.1:PORT (simple binds need TLS: olcSecurity simple_bind=128)
        server.ldaps_url    # ldaps://127.0.0.1:PORT2
        server.ca_file      # the generated CA that signed the server certificate
        server.stop(); server.start()   # same port, same data
        with server.frozen(): ...       # SIGSTOPped: accepts TCP, never answers

The directory (suffix ``dc=example,dc=test``) is seeded with :data:`USERS` under
``ou=people``, the service account :data:`SERVICE_DN` and the ``groupOfNames`` of
:data:`GROUPS` under ``ou=groups`` (``staff`` contains ``operators``: nesting). slapd
runs with ``-d stats``; its log lines are kept so that tests can see which BINDs happened.
Like Active Directory, it accepts an unauthenticated bind (a DN with an empty password).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import io
import ipaddress
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ldap.dn import escape_dn_chars
from ldif import LDIFWriter

SUFFIX = "dc=example,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS_BASE = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=gateway,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-pw-7d1c"
USERS: dict[str, str] = {  # uid -> password
    "alice": "alice-pw-correct",
    "bob": "bob-pw-correct",
    "carol": "carol-pw-correct",
    "dave": "dave-pw-correct",
    "neil, j (ops)*": "neil-pw-correct",  # DN and filter special characters in one uid
}
#: Names people know users by: alice has a displayName (Unicode); bob only a cn of his own; the rest cn = uid.
DISPLAY_NAMES: dict[str, str] = {"alice": "山田 花子"}
COMMON_NAMES: dict[str, str] = {"bob": "Bob Smith"}
CHAIN_LENGTH = 8  # chain-0 ∋ dave, chain-N ∋ chain-(N-1): deeper than any sane nesting limit
GROUPS: dict[str, list[str]] = {  # cn -> members: "uid" for a user, "cn=NAME" for a group
    "operators": ["alice", "neil, j (ops)*"],
    "staff": ["cn=operators"],
    "contractors": ["bob"],
    "cycle-a": ["carol", "cn=cycle-b"],
    "cycle-b": ["cn=cycle-a"],
    "chain-0": ["dave"],
    **{f"chain-{n}": [f"cn=chain-{n - 1}"] for n in range(1, CHAIN_LENGTH)},
}

_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_TOOL_TIMEOUT = 30.0
_MODULE_PATH = "/usr/lib/ldap"
_SCHEMA_DIR = Path("/etc/ldap/schema")


class SlapdError(Exception):
    """slapd could not be configured, started or stopped."""


def user_dn(uid: str) -> str:
    """The DN of a seeded user."""
    return f"uid={escape_dn_chars(uid)},{PEOPLE}"


def group_dn(cn: str) -> str:
    """The DN of a seeded group."""
    return f"cn={escape_dn_chars(cn)},{GROUPS_BASE}"


def write_ca(directory: Path, common_name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA certificate in ``directory/<common_name>.pem``; returns path, key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{common_name}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path, key, certificate


def write_server_certificate(
    directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate
) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by the CA; returns the certificate and key paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "server.pem", directory / "server.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return certificate_path, key_path


class SlapdServer:
    """slapd on ``ldap://127.0.0.1:PORT`` with its config, data and certificates under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir) / "slapd"
        self.port, self.ldaps_port = _free_ports(2)
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.ldaps_port}"
        self.ca_file = self.workdir / "test-ca.pem"
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._log: list[str] = []
        self._log_changed = threading.Condition()
        self._provisioned = False

    def __enter__(self) -> SlapdServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start slapd (provisioning config and data the first time); return once it listens."""
        if self._process is not None:
            raise SlapdError("slapd is already running")
        if not self._provisioned:
            self._provision()
        first_line = len(self.log_lines())
        command = ["slapd", "-d", "stats", "-h", f"{self.url}/ {self.ldaps_url}/", "-F", str(self.workdir / "slapd.d")]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_log, args=(self._process, ready), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + _READY_TIMEOUT
        # "slapd starting" comes after bind() but before listen(): a connection made just
        # then is refused, so wait for both the line and an accepted connection.
        if not (ready.wait(_READY_TIMEOUT) and _wait_until_accepting(self.port, deadline)):
            tail = "\n".join(self.log_lines()[-10:])
            self.stop()
            raise SlapdError(f"slapd did not start within {_READY_TIMEOUT:.0f} s:\n{tail}")
        # The probe's connection is logged too: wait for both of its lines (slapd's threads may
        # log "closed" before "ACCEPT") so that tests see only their own connections.
        self.wait_for_log(
            lambda lines: all(any(word in line for line in lines[first_line:]) for word in (" ACCEPT ", " closed")),
            _READY_TIMEOUT,
        )

    def stop(self) -> None:
        """SIGTERM slapd, SIGKILL it after a bounded wait; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
                process.send_signal(signal.SIGCONT)  # a frozen slapd only sees SIGTERM once resumed
            try:
                process.wait(timeout=_STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise SlapdError(f"slapd (pid {process.pid}) survived SIGKILL")
        if self._reader is not None:
            self._reader.join(_STOP_TIMEOUT)
            self._reader = None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP slapd for the block: the kernel still accepts connections, nobody answers."""
        process = self._running()
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise SlapdError("slapd is not running: call start() first")
        return self._process

    # -- log -----------------------------------------------------------------------------

    def log_lines(self) -> list[str]:
        """slapd's ``-d stats`` output so far (across restarts)."""
        with self._log_changed:
            return list(self._log)

    def wait_for_log(self, predicate: Callable[[list[str]], bool], timeout: float = 5.0) -> list[str]:
        """Wait (bounded) until ``predicate(lines)`` holds; return the lines."""
        with self._log_changed:
            if not self._log_changed.wait_for(lambda: predicate(self._log), timeout):
                raise SlapdError(f"slapd's log did not show what was expected within {timeout} s")
            return list(self._log)

    @staticmethod
    def bind_dns(lines: list[str]) -> list[str]:
        """The DNs of the simple BINDs in ``lines``, in order (``""`` for an anonymous bind)."""
        found = (re.search(r' BIND dn="(.*)" method=128$', line) for line in lines)
        return [match.group(1) for match in found if match is not None]

    def _read_log(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stderr is not None
        with io.TextIOWrapper(process.stderr, encoding="utf-8", errors="replace") as output:
            for raw in output:
                line = raw.rstrip("\n")
                with self._log_changed:
                    self._log.append(line)
                    self._log_changed.notify_all()
                if "slapd starting" in line:
                    ready.set()

    # -- provisioning ------------------------------------------------------------------------

    def _provision(self) -> None:
        config_dir, data_dir = self.workdir / "slapd.d", self.workdir / "data"
        for directory in (config_dir, data_dir):
            directory.mkdir(parents=True, mode=0o700)
        _, ca_key, ca_certificate = write_ca(self.workdir, "test-ca")
        certificate, key = write_server_certificate(self.workdir, ca_key, ca_certificate)
        config = self.workdir / "config.ldif"
        config.write_text(_config_ldif(data_dir, certificate, key, self.ca_file))
        _run(["slapadd", "-n0", "-F", str(config_dir), "-l", str(config)])
        data = self.workdir / "data.ldif"
        data.write_text(_data_ldif())
        _run(["slapadd", "-n1", "-F", str(config_dir), "-l", str(data)])
        self._provisioned = True


def _config_ldif(data_dir: Path, certificate: Path, key: Path, ca_file: Path) -> str:
    schemas = "\n".join((_SCHEMA_DIR / f"{name}.ldif").read_text() for name in ("core", "cosine", "inetorgperson"))
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcTLSCACertificateFile: {ca_file}
olcTLSCertificateFile: {certificate}
olcTLSCertificateKeyFile: {key}
olcSecurity: simple_bind=128
olcAllows: bind_anon_dn

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {_MODULE_PATH}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcDbDirectory: {data_dir}
olcDbMaxSize: 67108864
olcAccess: {{0}}to attrs=userPassword by anonymous auth by * none
olcAccess: {{1}}to * by users read by * none
"""


@functools.cache  # slappasswd per user is the slow part of provisioning; one set per test run
def _data_ldif() -> str:
    out = io.StringIO()
    writer = LDIFWriter(out)

    def add(dn: str, **attributes: list[str]) -> None:
        writer.unparse(dn, {name: [value.encode() for value in values] for name, values in attributes.items()})

    add(SUFFIX, objectClass=["dcObject", "organization"], dc=["example"], o=["deskgate tests"])
    for ou in ("people", "groups", "services"):
        add(f"ou={ou},{SUFFIX}", objectClass=["organizationalUnit"], ou=[ou])
    add(SERVICE_DN, objectClass=["organizationalRole", "simpleSecurityObject"], cn=["gateway"],
        userPassword=[_hash_password(SERVICE_PASSWORD)])  # fmt: skip
    for uid, password in USERS.items():
        shown = {"displayName": [DISPLAY_NAMES[uid]]} if uid in DISPLAY_NAMES else {}
        add(user_dn(uid), objectClass=["inetOrgPerson"], uid=[uid], cn=[COMMON_NAMES.get(uid, uid)], sn=[uid],
            userPassword=[_hash_password(password)], **shown)  # fmt: skip
    for cn, members in GROUPS.items():
        member_dns = [group_dn(m.removeprefix("cn=")) if m.startswith("cn=") else user_dn(m) for m in members]
        add(group_dn(cn), objectClass=["groupOfNames"], cn=[cn], member=member_dns)
    return out.getvalue()


def _hash_password(password: str) -> str:
    return _run(["slappasswd", "-h", "{SSHA}", "-T", "/dev/stdin"], stdin=password).strip()


def _run(command: list[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=_TOOL_TIMEOUT)
    except FileNotFoundError:
        raise SlapdError(f"{command[0]} is not installed: run `make deps` (slapd, ldap-utils)") from None
    if done.returncode != 0:
        raise SlapdError(f"{' '.join(command)} failed with status {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _wait_until_accepting(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=max(0.01, deadline - time.monotonic())):
                return True
        except ConnectionRefusedError:
            time.sleep(0.01)
        except OSError:
            return False
    return False


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: each probe stays bound until all are picked."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
        return ports
