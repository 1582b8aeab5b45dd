"""The native SSH listener (``listen.ssh``) against a real OpenSSH sshd target, driven by the real ``ssh``.

``ssh -p PORT alice+shell-01@gateway`` signs in with password and TOTP (keyboard-interactive),
runs a command whose output comes back and is in the recording; a wrong code is refused and
counted by the web's throttle; a source outside ``network.allow`` gets no SSH banner; a target
the policy does not allow, a desktop, port forwarding, SFTP and exec are refused and audited;
without a target a menu offers the allowed ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from gateway.audit import AuditEvent
from gateway.config import load_config
from gateway.web.app import start_gateway
from tests.functional.auth_helpers import PASSWORD, AuthGateway, Clock, add_local_users, cookie_session, write_config
from tests.functional.ssh_helpers import NativeSsh, kbdint_client, ssh_gateway, ssh_port
from tests.functional.terminal_helpers import TERMINAL_USERS, terminal_settings, wait_for_recording
from tests.sshd_server import SshdServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    with SshdServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


async def audited(gateway: AuthGateway, action: str, count: int = 1) -> list[AuditEvent]:
    """The ``action`` events, once there are ``count`` of them."""
    async with asyncio.timeout(10):
        while len(events := [e for e in await gateway.audit() if e.action == action]) < count:
            await asyncio.sleep(0.1)
    return events


async def test_ssh_with_password_and_totp_runs_a_command_that_is_recorded(sshd: SshdServer, tmp_path: Path) -> None:
    clock = Clock()
    async with ssh_gateway(sshd, tmp_path, clock=clock) as gateway:
        async with NativeSsh("-p", str(ssh_port(gateway)), "alice+shell-01@127.0.0.1") as ssh:
            await ssh.expect(b"Password: ")
            ssh.type(f"{PASSWORD}\r")
            await ssh.expect(b"Authenticator code: ")
            ssh.type(f"{gateway.code('alice')}\r")
            ssh.type("stty size; echo 日本語-native-$((6*7))\r")  # UTF-8 both ways
            output = await ssh.expect("日本語-native-42\r\n".encode())
            assert b"33 111\r\n" in output  # the client's terminal size is the PTY's
            ssh.type("exit\r")
            rest = await ssh.rest()
            assert b"the shell on shell-01 ended" in rest
            assert await ssh.exit_status() == 0

        events = await gateway.audit()
        logins = [e for e in events if e.action == "login"]
        assert [(e.user, e.outcome, e.detail["method"]) for e in logins] == [("alice", "success", "ssh:password+totp")]
        await audited(gateway, "session.close")
        events = await gateway.audit()
        opened = [e for e in events if e.action == "session.open"]
        assert [(e.user, e.target, e.outcome, e.detail["channel"]) for e in opened] == [
            ("alice", "shell-01", "allowed", "ssh")]
        closed = [e for e in events if e.action == "session.close"]
        assert [e.outcome for e in closed] == ["target_closed"]

        clock.advance(30)  # sam's code is his own, but keep every login on a fresh step
        async with cookie_session() as sam:
            assert (await gateway.login(sam, "sam")).status == 200
            found = await wait_for_recording(sam, gateway, text="native-42")
            assert [(row["user"], row["target"], row["protocol"]) for row in found] == [("alice", "shell-01", "ssh")]
            assert closed[0].detail["recording"] == found[0]["id"]
            assert await gateway.metric(sam, 'deskgate_auth_attempts_total{method="ssh:password+totp",result="ok"}') \
                == 1
            assert await gateway.metric(sam, 'deskgate_sessions_total{outcome="target_closed",protocol="ssh"}') == 1


async def test_a_wrong_code_is_refused_and_counted_by_the_web_throttle(sshd: SshdServer, tmp_path: Path) -> None:
    clock = Clock()
    async with ssh_gateway(sshd, tmp_path, clock=clock) as gateway:
        async with NativeSsh("-p", str(ssh_port(gateway)), "alice@127.0.0.1") as ssh:
            await ssh.expect(b"Password: ")
            ssh.type(f"{PASSWORD}\r")
            await ssh.expect(b"Authenticator code: ")
            ssh.type("000000\r")
            rest = await ssh.rest()
            assert b"wrong username or password, or wrong or expired authenticator code" in rest  # the banner
            assert b"Permission denied" in rest
            assert await ssh.exit_status() == 255
        failures = [e for e in await gateway.audit() if e.action == "login"]
        assert [(e.user, e.outcome, e.detail["method"]) for e in failures] == [("alice", "failure", "ssh:password+totp")]

        # Four more wrong codes over SSH: the fifth failure starts the throttle's backoff, for the web too.
        for _ in range(4):
            with pytest.raises(asyncssh.DisconnectError):  # refused: permission denied, or closed after three
                async with kbdint_client(gateway, "alice", [PASSWORD, "000000"] * 3):
                    pass
        async with cookie_session() as alice:
            response = await gateway.login(alice, "alice")
            assert response.status == 429, await response.text()
            assert await gateway.metric(alice, 'deskgate_auth_attempts_total{method="ssh:password+totp",'
                                               'result="bad_totp"}') >= 5


async def test_a_source_outside_the_allow_list_gets_no_ssh_banner(sshd: SshdServer, tmp_path: Path) -> None:
    async with ssh_gateway(sshd, tmp_path, extra={"network": {"allow": ["10.0.0.0/8"]}}) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", ssh_port(gateway))
        try:
            assert await asyncio.wait_for(reader.read(256), 10) == b""  # closed before a byte: no "SSH-2.0-" banner
        finally:
            writer.close()
        denied = await audited(gateway, "network.denied")
        assert [(e.source, e.target, e.outcome) for e in denied] == [("127.0.0.1", "ssh listener", "denied")]
        async with cookie_session() as http:
            assert await gateway.metric(http, 'deskgate_connections_refused_total{listener="ssh",reason="network"}') \
                == 1


async def test_targets_not_allowed_are_refused_and_the_menu_offers_the_allowed(sshd: SshdServer,
                                                                               tmp_path: Path) -> None:
    clock = Clock()
    async with ssh_gateway(sshd, tmp_path, clock=clock) as gateway:
        for target, says in (("root-shell", "you may not open root-shell from here"),
                             ("desk-01", "desk-01 is a desktop, not a terminal"),
                             ("nowhere", "there is no terminal target called 'nowhere'")):
            clock.advance(30)
            async with kbdint_client(gateway, f"alice+{target}", [PASSWORD, gateway.code("alice")]) as connection:
                process = await connection.create_process(term_type="xterm", encoding=None)
                output = await asyncio.wait_for(process.stdout.read(), 20)
                assert says.encode() in output, output
        denied = [e for e in await gateway.audit() if e.action == "session.open"]
        assert [(e.target, e.outcome, e.detail["channel"]) for e in denied] == [
            ("root-shell", "denied", "ssh"), ("desk-01", "denied", "ssh"), ("nowhere", "denied", "ssh")]

        clock.advance(30)
        async with kbdint_client(gateway, "alice", [PASSWORD, gateway.code("alice")]) as connection:
            process = await connection.create_process(term_type="xterm", encoding=None)
            menu = b""
            async with asyncio.timeout(20):
                while b"Type a number" not in menu:
                    menu += await process.stdout.read(4096)
            assert b"1) shell-01" in menu and b"root-shell" not in menu and b"desk-01" not in menu
            process.stdin.write(b"1\r")
            process.stdin.write(b"echo menu-$((2*21))\n")
            output = b""
            async with asyncio.timeout(20):
                while b"menu-42" not in output:
                    output += await process.stdout.read(4096)
            process.stdin.write(b"exit\n")
        await audited(gateway, "session.close")


async def test_port_forwarding_sftp_and_exec_are_refused_and_audited(sshd: SshdServer, tmp_path: Path) -> None:
    async with ssh_gateway(sshd, tmp_path) as gateway:
        async with kbdint_client(gateway, "alice+shell-01", [PASSWORD, gateway.code("alice")],
                                 agent_path=str(tmp_path / "no-agent")) as connection:
            with pytest.raises(asyncssh.ChannelOpenError):
                await connection.open_connection("127.0.0.1", sshd.port)
            with pytest.raises(asyncssh.ChannelListenError):
                await connection.forward_remote_port("127.0.0.1", 0, "127.0.0.1", sshd.port)
            with pytest.raises((asyncssh.SFTPError, asyncssh.ChannelOpenError, asyncssh.Error)):
                await connection.start_sftp_client()
            with pytest.raises(asyncssh.ChannelOpenError):
                await connection.run("id")
            (tmp_path / "Xauthority").write_bytes(b"")
            shell = await connection.create_process(term_type="xterm", x11_forwarding="ignore_failure", x11_display="127.0.0.1:90",
                                                    x11_auth_path=str(tmp_path / "Xauthority"), encoding=None)
            shell.stdin.write(b"exit\n")
            await asyncio.wait_for(shell.wait_closed(), 20)
        # Every session channel of this connection asks to forward the agent: each ask is refused.
        refused = await audited(gateway, "ssh.refused", 8)
        assert sorted(e.detail["kind"] for e in refused) == ["agent"] * 3 + ["direct_tcpip", "exec", "subsystem",
                                                                             "tcpip_forward", "x11"]
        assert {e.user for e in refused} == {"alice"}
        async with cookie_session() as http:
            for kind, count in (("direct_tcpip", 1), ("tcpip_forward", 1), ("subsystem", 1), ("exec", 1), ("agent", 3),
                                ("x11", 1)):
                assert await gateway.metric(http, f'deskgate_ssh_refusals_total{{kind="{kind}"}}') == count


async def test_shutdown_ends_live_ssh_terminals_and_audits_them_and_closes_waiting_connections(
        sshd: SshdServer, tmp_path: Path) -> None:
    settings = terminal_settings(sshd, tmp_path)
    settings["listen"] = {"ssh": "127.0.0.1:0", "ssh_host_key": str(tmp_path / "ssh_host_key")}
    config = load_config(write_config(tmp_path, settings))
    secrets = add_local_users(config, TERMINAL_USERS)
    gateway = AuthGateway(await start_gateway(config), config, time.time, secrets)
    stopped = False
    try:
        async with kbdint_client(gateway, "alice+shell-01", [PASSWORD, gateway.code("alice")]) as connection:
            process = await connection.create_process(term_type="xterm", encoding=None)
            process.stdin.write(b"echo up-$((2+2))\n")
            output = b""
            async with asyncio.timeout(20):
                while b"up-4" not in output:
                    output += await process.stdout.read(4096)
            waiting, writer = await asyncio.open_connection("127.0.0.1", ssh_port(gateway))  # never signs in
            assert (await waiting.readline()).startswith(b"SSH-2.0-deskgate")
            stopped = True
            await asyncio.wait_for(gateway.gateway.stop(), 30)
            assert b"the gateway is shutting down" in await asyncio.wait_for(process.stdout.read(), 10)
            await asyncio.wait_for(waiting.read(), 10)  # closed by the gateway, not left waiting
            writer.close()
    finally:
        if not stopped:
            await gateway.gateway.stop()
    closes = [e for e in await gateway.audit() if e.action == "session.close"]
    assert [(e.user, e.outcome, e.reason) for e in closes] == [("alice", "terminated", "the gateway is shutting down")]
