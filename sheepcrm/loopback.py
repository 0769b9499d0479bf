"""Who serves a loopback port: the one place that reads the owners of local TCP sockets (Linux's socket
diagnostics for the listening ones, /proc/net/tcp* for a connection's other end).

A loopback upstream (the sandbox on 127.0.0.1) gets the API key in every request, and any local account can
listen on a free loopback port. So the key goes there only while this user's own process serves it: the settings
check the port's listeners at start, and `guard` checks the socket at the other end of every new connection before
a byte is sent on it, so an account that binds the port after the person's sandbox stopped gets nothing. Where there
is no /proc (not Linux) the owner cannot be read: then only the person's own settings file can name a loopback
upstream (server/settings.py), and connections to it are not checked.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any, Protocol

import anyio

from sheepcrm_mcp.sheepcrm.config import is_loopback
from sheepcrm_mcp.sheepcrm.errors import UntrustedUpstream

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"
Address = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def _address(hexed: str) -> Address:
    """An address of /proc/net/tcp* ("0100007F:1F90": 32-bit words in the host's byte order, then the port)."""
    host, port = hexed.split(":")
    raw = b"".join(int(host[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(host), 8))
    return _plain(ipaddress.ip_address(raw)), int(port, 16)


def _plain(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4 address written as IPv6 (::ffff:127.0.0.1, a dual-stack socket's view) as plain IPv4."""
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped or ip


def _rows() -> list[list[str]] | None:
    """Every TCP socket of this machine as its /proc/net/tcp* fields (local, remote, state at 1, 2, 3; owner uid at
    7), addresses unread: a machine may have thousands of sockets. None where there is no /proc/net."""
    found: list[list[str]] | None = None
    for table in TABLES:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found = (found or []) + [fields for fields in map(str.split, lines) if len(fields) > 7]
    return found


def _hex_port(port: int) -> str:
    """How /proc/net/tcp* ends an address on `port`."""
    return f":{port:04X}"


def listeners(*ports: int) -> dict[int, list[int]] | None:
    """The owners (uids) of every TCP socket listening on each of `ports`, from one reading of the listening
    sockets (None where they cannot be read)."""
    rows = _listening()
    if rows is None:
        return None
    found: dict[int, list[int]] = {p: [] for p in ports}
    for port, owner in rows:
        if port in found:
            found[port].append(owner)
    return found


# The kernel's socket diagnostics (netlink, as `ss -ltn` asks): the listening sockets alone, where reading
# /proc/net/tcp* walks every connection of the machine (a start-up cost of 10-20 ms, more on a busy machine).
_SOCK_DIAG, _BY_FAMILY, _DUMP_REQUEST, _DONE, _ERROR, _TCP_LISTEN = 4, 20, 0x301, 3, 2, 10


def _listening() -> list[tuple[int, int]] | None:
    """(port, owner uid) of every listening TCP socket, IPv4 and IPv6: from the socket diagnostics, else from
    /proc/net/tcp*; None where neither can be read."""
    try:
        return _diagnosed()
    except (AttributeError, OSError, IndexError, struct.error):  # no AF_NETLINK (not Linux), or refused
        rows = _rows()
    if rows is None:
        return None
    return [(int(fields[1][-4:], 16), int(fields[7])) for fields in rows if fields[3] == _LISTEN]


def _diagnosed() -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _SOCK_DIAG) as sock:
        sock.settimeout(2.0)
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            # inet_diag_req_v2: family, protocol, extensions, pad, states (listening only), an empty socket id
            request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
            sock.send(struct.pack("=IHHII", 16 + len(request), _BY_FAMILY, _DUMP_REQUEST, seq, 0) + request)
            done = False
            while not done:
                data = sock.recv(1 << 16)
                at = 0
                while at + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, at)
                    if kind == _ERROR or length < 16:
                        raise OSError("the socket diagnostics refused the request")
                    if kind == _DONE:
                        done = True
                        break
                    # inet_diag_msg after the 16-byte header: family, state, timer, retransmits, then the socket
                    # id (source port first, network order; 48 bytes), expires, queues, then the owner's uid.
                    if kind == _BY_FAMILY and data[at + 17] == _TCP_LISTEN:
                        (port,) = struct.unpack_from("!H", data, at + 20)
                        (owner,) = struct.unpack_from("=I", data, at + 80)
                        found.append((port, owner))
                    at += (length + 3) & ~3
    return found


class Connected(Protocol):
    """A connected socket (asyncio hands out a TransportSocket, not a socket.socket)."""

    def getsockname(self) -> Any: ...

    def getpeername(self) -> Any: ...


def peer_owner(sock: Connected) -> int | None:
    """The owner (uid) of the socket at the other end of a connected loopback socket, or None when it cannot be
    found. The other end is the accepting side (or its half-open request), which carries its listener's owner.
    Asked of the socket diagnostics for that one socket (reading /proc/net/tcp* walks every socket of the machine:
    milliseconds on a busy one, for each new connection); from /proc where they cannot be asked or do not find it,
    or where the other end is still a half-open request (the diagnostics give those uid 0, /proc its listener's)."""
    ours, theirs = sock.getsockname(), sock.getpeername()
    me: Address = (_plain(ipaddress.ip_address(ours[0])), ours[1])
    peer: Address = (_plain(ipaddress.ip_address(theirs[0])), theirs[1])
    try:
        owner = _diagnosed_owner(peer, me)
    except (AttributeError, OSError, IndexError, struct.error):  # no AF_NETLINK (not Linux), or refused
        owner = None
    if owner is not None:
        return owner
    theirs_, ours_ = _hex_port(peer[1]), _hex_port(me[1])
    for fields in _rows() or []:
        if (
            fields[3] != _LISTEN
            and fields[1].endswith(theirs_)
            and fields[2].endswith(ours_)
            and (_address(fields[1]), _address(fields[2])) == (peer, me)
        ):
            return int(fields[7])
    return None


_REQUEST, _NO_COOKIE, _ALL_STATES, _ENOENT = 1, 0xFFFFFFFF, 0xFFFFFFFF, 2
# States the diagnostics give no owner (uid 0): a half-open request, a socket in TIME_WAIT; and the listener the
# kernel's lookup falls back to when no connection matches.
_NOT_THAT_SOCKET = (3, 6, _TCP_LISTEN)


def _packed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, family: int) -> bytes:
    """An address as inet_diag_sockid holds it (16 bytes): IPv4 in the first 4, or IPv6 (IPv4 mapped into it)."""
    if family == socket.AF_INET:
        return ip.packed + bytes(12)
    return ip.packed if isinstance(ip, ipaddress.IPv6Address) else ipaddress.IPv6Address(f"::ffff:{ip}").packed


def _ends(data: bytes) -> tuple[Address, Address]:
    """The two ends of the socket an inet_diag_msg (after its 16-byte header) describes: family at 16, source and
    destination ports at 20, their addresses at 24 and 40 (IPv4 in the first 4 bytes of each)."""
    sport, dport = struct.unpack_from("!HH", data, 20)
    size = 4 if data[16] == socket.AF_INET else 16
    src, dst = ipaddress.ip_address(data[24 : 24 + size]), ipaddress.ip_address(data[40 : 40 + size])
    return (_plain(src), sport), (_plain(dst), dport)


def _diagnosed_owner(local: Address, remote: Address) -> int | None:
    """The owner of the one TCP socket whose own end is `local` and whose other end is `remote` (the socket
    diagnostics' exact lookup, as `ss` asks for one socket): its uid; None when there is no such socket, or it is a
    half-open request or in TIME_WAIT (the diagnostics give those uid 0, not an owner). Raises OSError when they
    refuse."""
    both_v4 = isinstance(local[0], ipaddress.IPv4Address) and isinstance(remote[0], ipaddress.IPv4Address)
    family = socket.AF_INET if both_v4 else socket.AF_INET6
    # inet_diag_req_v2 with the socket id: source port and address first (network order), interface, no cookie.
    request = (
        struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES)
        + struct.pack("!HH", local[1], remote[1])
        + _packed(local[0], family)
        + _packed(remote[0], family)
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _SOCK_DIAG) as sock:
        sock.settimeout(2.0)
        sock.send(struct.pack("=IHHII", 16 + len(request), _BY_FAMILY, _REQUEST, 1, 0) + request)
        data = sock.recv(1 << 16)
    length, kind = struct.unpack_from("=IH", data, 0)
    if kind == _ERROR:
        (errno,) = struct.unpack_from("=i", data, 16)
        if -errno == _ENOENT:  # no such socket
            return None
        raise OSError(-errno, "the socket diagnostics refused the request")
    if kind != _BY_FAMILY or length < 84:
        raise OSError("the socket diagnostics answered something else")
    if data[17] in _NOT_THAT_SOCKET or _ends(data) != (local, remote):
        return None
    (owner,) = struct.unpack_from("=I", data, 80)
    return int(owner)


async def settled_owner(sock: Connected) -> int | None:
    """peer_owner of a socket just connected: the accepting side appears as the handshake completes, so look again
    briefly before saying its owner cannot be read."""
    for _ in range(5):
        owner = peer_owner(sock)
        if owner is not None:
            return owner
        await anyio.sleep(0.01)
    return None


def _refused(target: str, why: str) -> UntrustedUpstream:
    return UntrustedUpstream(
        f"the loopback upstream {target} {why}, so nothing was sent to it (no request, no API key). Start your "
        "sandbox on that port again (or point SHEEPCRM_BASE_URL / SHEEPCRM_V1_BASE_URL at a port it listens on) and "
        "restart the server"
    )


async def _check(stream: Any) -> None:
    """Refuse a new connection unless the socket at its other end is this user's; close it when refused."""
    sock = stream.get_extra_info("socket")
    if not callable(getattr(sock, "getpeername", None)) or not os.path.exists(TABLES[0]):
        return  # no socket to look at (a test transport), or no /proc: see the module's notes
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        host, port = "?", 0
    target = f"{host}:{port}"
    owner = await settled_owner(sock) if is_loopback(str(host)) else None
    if owner != os.getuid():
        await stream.aclose()
        if not is_loopback(str(host)):
            raise _refused(target, "was reached through an address that is not loopback")
        if owner is None:
            raise _refused(target, "is served by a socket whose owner could not be read")
        raise _refused(target, f"is now served by another local account (uid {owner}), not by you")


async def guard(event: str, info: dict[str, Any]) -> None:
    """An httpx/httpcore `trace` hook for requests to a loopback upstream: every new TCP connection (reused
    keep-alive connections make none) is checked before anything is written on it."""
    if event == "connection.connect_tcp.complete":
        await _check(info.get("return_value"))
