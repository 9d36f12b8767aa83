"""Every aiortc / aioice internal the SFU relies on, and nothing else.

aiortc is pinned (``aiortc==1.16.0``, ``aioice`` 0.13). :func:`verify_internals`
checks that what this module touches is still there and shaped as expected; the
test ``tests/signaling/sfu/test_aiortc_internals.py`` calls it and fails loudly
after an upgrade. The real-peer tests then check the behaviour end to end.

What is used, and why:

* ``RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms=...)``: the point
  where aiortc's DTLS transport hands over a parsed, decrypted :class:`RtpPacket`.
  Above it aiortc depayloads, jitter-buffers and decodes in a thread per track;
  we replace it *per instance* with a tap, and replace ``receive()`` per instance
  so that no decoder thread and no RTCP task is started.
* ``RTCRtpSender.send()`` is replaced per instance by a registration with the
  DTLS transport's RTP router (so that RTCP receiver reports are routed), without
  aiortc's RTP task (which polls every 20 ms without a track) or RTCP task: the
  SFU sends the slot RTP and sender reports itself. ``RTCRtpSender._ssrc`` is set
  before the answer so that every listener's slot *i* has the same SSRC, which is
  what lets a slot's packet be serialized once for all listeners.
* ``RTCDtlsTransport._tx_srtp`` / ``_rx_srtp`` (pylibsrtp sessions keyed from
  DTLS), ``_register_rtp_sender`` / ``_register_rtp_receiver``.
* ``RTCIceTransport._connection`` (the aioice ``Connection``) and in it
  ``_nominated[1]`` (the selected pair: its ``StunProtocol.transport`` and
  ``remote_addr``) for the fast path ``protect`` + ``sendto``.
* Host candidate gathering: aioice's ``Connection.gather_candidates`` binds only
  on ``get_host_addresses()``, which leaves out loopback, and cannot take a port
  range or an announced address. :func:`gather_host_candidates` does the same
  job on one Connection *instance* (it binds :class:`aioice.ice.StunProtocol`
  endpoints and marks gathering done: ``_local_candidates_start``/``_end``,
  ``_local_candidates``, ``_protocols``, ``_components``), so that aiortc's later
  ``gather()`` is a no-op. No global monkeypatching.
* ``Connection.data_received`` / ``request_received`` are wrapped per instance to
  timestamp inbound traffic (silence detection).
* The asyncio datagram transport's ``_sock`` (stdlib selector loop) is used for a
  plain ``socket.sendto``; other loops (uvloop) use ``transport.sendto``.
* pylibsrtp (pinned, 1.0.0): ``Session._srtp`` / ``_cdata`` / ``_buffer`` and
  ``pylibsrtp._binding.lib.srtp_protect``. :func:`fast_protect` does what
  ``Session.protect`` does (copy into the session's buffer, ``srtp_protect``, copy
  out) without its per-call Python overhead (``ffi.new``, bound-method dispatch):
  ~1 us less per listener packet, the same bytes.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import aioice
import aioice.ice
import aiortc
import pylibsrtp
import pylibsrtp._binding
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCDtlsTransport, RtpRouter
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import RtpPacket

EXPECTED_AIORTC_VERSION: Final = "1.16.0"
EXPECTED_AIOICE_VERSION: Final = "0.13.0"
EXPECTED_PYLIBSRTP_VERSION: Final = "1.0.0"
_UDP_RCVBUF: Final = 1024 * 1024


class AiortcInternalsChanged(RuntimeError):
    """aiortc/aioice no longer look like what signaling.sfu was written against."""


def verify_internals() -> None:
    """Raise :class:`AiortcInternalsChanged` listing every internal that moved."""
    problems: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    need(aiortc.__version__ == EXPECTED_AIORTC_VERSION, f"aiortc is {aiortc.__version__}")
    need(aioice.__version__ == EXPECTED_AIOICE_VERSION, f"aioice is {aioice.__version__}")
    need(
        pylibsrtp.__version__ == EXPECTED_PYLIBSRTP_VERSION,
        f"pylibsrtp is {pylibsrtp.__version__}",
    )
    process = inspect.getsource(pylibsrtp.Session._Session__process)  # type: ignore[attr-defined]
    need(
        "self._buffer[0 : len(data)] = data" in process
        and "func(self._srtp[0], self._cdata, len_p)" in process
        and "return self._buffer[0 : len_p[0]]" in process,
        "pylibsrtp.Session.__process (_srtp, _cdata, _buffer)",
    )
    need(
        "lib.srtp_protect, SRTP_MAX_TRAILER_LEN" in inspect.getsource(pylibsrtp.Session.protect),
        "pylibsrtp.Session.protect",
    )
    need(callable(getattr(pylibsrtp._binding.lib, "srtp_protect", None)), "lib.srtp_protect")

    def params(func: Any) -> list[str]:
        return list(inspect.signature(func).parameters)

    need(
        params(RTCRtpReceiver._handle_rtp_packet) == ["self", "packet", "arrival_time_ms"],
        "RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms)",
    )
    need(
        inspect.iscoroutinefunction(RTCRtpReceiver._handle_rtp_packet),
        "RTCRtpReceiver._handle_rtp_packet is async",
    )
    need(params(RTCRtpReceiver.receive) == ["self", "parameters"], "RTCRtpReceiver.receive")
    need(params(RTCRtpSender.send) == ["self", "parameters"], "RTCRtpSender.send")
    need(hasattr(RTCRtpReceiver, "_handle_rtcp_packet"), "RTCRtpReceiver._handle_rtcp_packet")
    need(hasattr(RTCRtpSender, "_handle_rtcp_packet"), "RTCRtpSender._handle_rtcp_packet")
    route = inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    need(
        "receiver._handle_rtp_packet(packet, arrival_time_ms=" in route,
        "RTCDtlsTransport._handle_rtp_data calls receiver._handle_rtp_packet",
    )
    connect = inspect.getsource(RTCPeerConnection._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    need("transceiver.sender.send(" in connect, "RTCPeerConnection.__connect calls sender.send")
    need(
        "transceiver.receiver.receive(" in connect,
        "RTCPeerConnection.__connect calls receiver.receive",
    )
    setup = inspect.getsource(RTCDtlsTransport._setup_srtp)
    need("self._tx_srtp = Session(" in setup, "RTCDtlsTransport._tx_srtp")
    need("self._rx_srtp = Session(" in setup, "RTCDtlsTransport._rx_srtp")
    need("self._ssl = SSL.Connection(" in inspect.getsource(RTCDtlsTransport.start), "_ssl")
    need(all(hasattr(p, "libsrtp_profile") for p in SRTP_PROFILES), "SRTP_PROFILES")
    for name in ("_register_rtp_sender", "_register_rtp_receiver", "_send_rtp"):
        need(hasattr(RTCDtlsTransport, name), f"RTCDtlsTransport.{name}")
    need(hasattr(RtpRouter, "route_rtp"), "RtpRouter.route_rtp")
    ice_init = inspect.getsource(RTCIceTransport.__init__)
    need("self._connection = gatherer._connection" in ice_init, "RTCIceTransport._connection")
    need(
        "sender._ssrc" in inspect.getsource(RTCDtlsTransport._register_rtp_sender),
        "RTCRtpSender._ssrc routes RTCP",
    )

    conn = aioice.Connection(ice_controlling=False)
    for attr in (
        "_local_candidates_start",
        "_local_candidates_end",
        "_local_candidates",
        "_protocols",
        "_components",
        "_nominated",
        "_use_ipv4",
        "_use_ipv6",
    ):
        need(hasattr(conn, attr), f"aioice.Connection.{attr}")
    gather = inspect.getsource(aioice.Connection.gather_candidates)
    need("if not self._local_candidates_start:" in gather, "gather_candidates is skippable")
    for name in ("data_received", "request_received"):
        need(callable(getattr(conn, name, None)), f"aioice.Connection.{name}")
    need(
        params(aioice.ice.StunProtocol.__init__) == ["self", "receiver"],
        "aioice.ice.StunProtocol(receiver)",
    )
    sendto = inspect.getsource(aioice.Connection.sendto)
    need("self._nominated.get(component)" in sendto, "aioice.Connection._nominated")
    need(
        "active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto,
        "CandidatePair.protocol / remote_addr",
    )
    need(callable(getattr(aioice.ice, "get_host_addresses", None)), "aioice.ice.get_host_addresses")
    if problems:
        raise AiortcInternalsChanged(
            "signaling.sfu.aiortc_internals must be revised: " + "; ".join(problems)
        )


# --- ICE gathering -----------------------------------------------------------------


def ice_connection(pc: RTCPeerConnection) -> aioice.Connection | None:
    """The aioice Connection of the peer connection's (bundled) transport."""
    for transceiver in pc.getTransceivers():
        conn: aioice.Connection = transceiver.receiver.transport.transport._connection
        return conn
    return None


def dtls_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    for transceiver in pc.getTransceivers():
        dtls: RTCDtlsTransport = transceiver.receiver.transport
        return dtls
    return None


def _ice_connections(pc: RTCPeerConnection) -> list[aioice.Connection]:
    seen: list[aioice.Connection] = []
    for transceiver in pc.getTransceivers():
        conn = transceiver.receiver.transport.transport._connection
        if all(conn is not c for c in seen):
            seen.append(conn)
    return seen


def _bind_socket(host: str, port_range: tuple[int, int] | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if port_range is None:
            sock.bind((host, 0))
        else:
            low, high = port_range
            size = high - low + 1
            start = random.randrange(size)
            for i in range(size):
                try:
                    sock.bind((host, low + (start + i) % size))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            else:
                raise OSError(errno.EADDRINUSE, f"no free UDP port in {low}-{high} on {host}")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RCVBUF)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _stun_protocol_factory(conn: aioice.Connection) -> Callable[[], aioice.ice.StunProtocol]:
    def factory() -> aioice.ice.StunProtocol:
        return aioice.ice.StunProtocol(conn)

    return factory


async def gather_host_candidates(
    pc: RTCPeerConnection,
    addresses: Iterable[str],
    *,
    bind_host: str | None = None,
    public_ip: str | None = None,
    port_range: tuple[int, int] | None = None,
) -> None:
    """Gather host candidates for ``pc`` ourselves, before aiortc would.

    Call after the transceivers exist (after ``setRemoteDescription`` on an
    answerer, after ``addTransceiver`` on an offerer) and before
    ``setLocalDescription``. Empty ``addresses``: aioice's default (non-loopback
    interface addresses). Already gathered connections are left alone.
    """
    loop = asyncio.get_running_loop()
    wanted = list(addresses)
    for conn in _ice_connections(pc):
        if conn._local_candidates_start:
            continue
        conn._local_candidates_start = True
        hosts = wanted or aioice.ice.get_host_addresses(
            use_ipv4=conn._use_ipv4, use_ipv6=conn._use_ipv6
        )
        protocols: list[aioice.ice.StunProtocol] = []
        candidates: list[Candidate] = []
        try:
            for component in sorted(conn._components):
                for address in hosts:
                    sock = _bind_socket(bind_host or address, port_range)
                    try:
                        _, protocol = await loop.create_datagram_endpoint(
                            _stun_protocol_factory(conn), sock=sock
                        )
                    except BaseException:
                        sock.close()
                        raise
                    port = sock.getsockname()[1]
                    announced = public_ip or address
                    protocol.local_candidate = Candidate(
                        foundation=candidate_foundation("host", "udp", announced),
                        component=component,
                        transport="udp",
                        priority=candidate_priority(component, "host"),
                        host=announced,
                        port=port,
                        type="host",
                    )
                    protocols.append(protocol)
                    candidates.append(protocol.local_candidate)
        except BaseException:
            for protocol in protocols:
                protocol.transport.close()
            raise
        # No await between these: aiortc's __connect checks for local candidates.
        conn._protocols += protocols
        conn._local_candidates += candidates
        conn._local_candidates_end = True


class Activity:
    """Monotonic time of the last datagram received from the peer."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = time.monotonic()


def watch_activity(pc: RTCPeerConnection, activity: Activity) -> None:
    """Record inbound traffic (ICE checks, DTLS, SRTP, SRTCP) in ``activity``."""
    for conn in _ice_connections(pc):
        data_received = conn.data_received
        request_received = conn.request_received

        def on_data(data: bytes, component: int, _orig: Any = data_received) -> None:
            activity.last = time.monotonic()
            _orig(data, component)

        def on_request(
            message: Any, addr: Any, protocol: Any, _orig: Any = request_received
        ) -> None:
            activity.last = time.monotonic()
            _orig(message, addr, protocol)

        conn.data_received = on_data  # type: ignore[method-assign]
        conn.request_received = on_request  # type: ignore[method-assign]


# --- RTP hooks ---------------------------------------------------------------------


def set_sender_ssrc(sender: RTCRtpSender, ssrc: int) -> None:
    """Fix the SSRC that the answer will announce for this sender."""
    sender._ssrc = ssrc


def sender_ssrc(sender: RTCRtpSender) -> int:
    ssrc: int = sender._ssrc
    return ssrc


def hook_sender(sender: RTCRtpSender, on_rtcp: Callable[[Any], None] | None = None) -> None:
    """Make ``sender`` send nothing by itself; RTCP for its SSRC is still routed to it."""

    async def send(parameters: Any) -> None:
        sender.transport._register_rtp_sender(sender, parameters)

    sender.send = send  # type: ignore[method-assign]
    if on_rtcp is not None:
        original = sender._handle_rtcp_packet

        async def handle_rtcp(packet: Any) -> None:
            on_rtcp(packet)
            await original(packet)

        sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def hook_receiver(
    receiver: RTCRtpReceiver,
    on_rtp: Callable[[RtpPacket], None],
    on_rtcp: Callable[[Any], None] | None = None,
) -> None:
    """Take ``receiver``'s raw RTP packets: no depayloading, no jitter buffer, no decoder.

    ``on_rtp`` gets each decrypted, parsed :class:`RtpPacket` (header extensions
    parsed with the negotiated ids), synchronously, from the DTLS reader task.
    """

    async def receive(parameters: Any) -> None:
        receiver.transport._register_rtp_receiver(receiver, parameters)

    async def handle_rtp(packet: RtpPacket, arrival_time_ms: int) -> None:
        on_rtp(packet)

    async def handle_rtcp(packet: Any) -> None:
        if on_rtcp is not None:
            on_rtcp(packet)

    receiver.receive = receive  # type: ignore[method-assign]
    receiver._handle_rtp_packet = handle_rtp  # type: ignore[method-assign]
    receiver._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


# --- fast path ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FastPath:
    """Per-peer send path: SRTP-protect with the peer's DTLS-derived keys, then sendto
    on the selected candidate pair's socket. Both are plain C calls."""

    protect: Callable[[bytes], bytes]
    protect_rtcp: Callable[[bytes], bytes]
    sendto: Callable[[bytes, tuple[str, int]], Any]
    addr: tuple[str, int]


def fast_protect(session: pylibsrtp.Session) -> Callable[[bytes], bytes]:
    """``session.protect`` without pylibsrtp's per-call Python overhead; same result,
    same exceptions (``ValueError`` if too long, ``pylibsrtp.Error`` from libsrtp)."""
    ffi = pylibsrtp._binding.ffi
    srtp_protect = pylibsrtp._binding.lib.srtp_protect
    ptr = session._srtp[0]
    cdata = session._cdata
    buffer = session._buffer
    limit = len(cdata) - pylibsrtp.SRTP_MAX_TRAILER_LEN
    length = ffi.new("int *")
    check = pylibsrtp._srtp_assert

    def protect(data: bytes, _keep: pylibsrtp.Session = session) -> bytes:
        # ``_keep``: the session owns ``ptr`` (freed with it), so it lives as long as we do.
        n = len(data)
        if n > limit:
            raise ValueError("packet is too long")
        length[0] = n
        buffer[0:n] = data
        status = srtp_protect(ptr, cdata, length)
        if status:
            check(status)  # type: ignore[no-untyped-call]
        out: bytes = buffer[0 : length[0]]
        return out

    return protect


def fast_path(pc: RTCPeerConnection) -> FastPath | None:
    """The fast path of a connected peer connection, or None if not connected yet."""
    dtls = dtls_transport(pc)
    conn = ice_connection(pc)
    if dtls is None or conn is None or dtls._tx_srtp is None:
        return None
    pair = conn._nominated.get(1)
    if pair is None:
        return None
    transport = pair.protocol.transport
    sock = getattr(transport, "_sock", None)
    sendto: Callable[[bytes, tuple[str, int]], Any] = (
        sock.sendto if isinstance(sock, socket.socket) else transport.sendto
    )
    srtp = dtls._tx_srtp
    return FastPath(
        protect=fast_protect(srtp),
        protect_rtcp=srtp.protect_rtcp,
        sendto=sendto,
        addr=(str(pair.remote_addr[0]), int(pair.remote_addr[1])),
    )


def srtp_profile(pc: RTCPeerConnection) -> int | None:
    """The libsrtp profile (``pylibsrtp.Policy.SRTP_PROFILE_*``) DTLS negotiated."""
    dtls = dtls_transport(pc)
    if dtls is None or dtls._ssl is None:
        return None
    name = dtls._ssl.get_selected_srtp_profile()
    for profile in SRTP_PROFILES:
        if profile.openssl_profile == name:
            value: int = profile.libsrtp_profile
            return value
    return None


def install_fast_receive(
    pc: RTCPeerConnection, on_rtp: Callable[[bytes], None]
) -> Callable[[], Awaitable[None]] | None:
    """Client side (tests, load tests): hand every SRTP RTP datagram, decrypted, to
    ``on_rtp`` straight from the socket callback, skipping aiortc's per-packet tasks.

    STUN, DTLS and SRTCP still take aiortc's path. Returns None if not connected.
    """
    dtls = dtls_transport(pc)
    conn = ice_connection(pc)
    if dtls is None or conn is None or dtls._rx_srtp is None:
        return None
    pair = conn._nominated.get(1)
    if pair is None:
        return None
    protocol = pair.protocol
    original = protocol.datagram_received
    unprotect = dtls._rx_srtp.unprotect

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        first = data[0] if data else 0
        # RTP, not RTCP (RFC 5761: RTCP packet types 192..223 in the 2nd byte)
        if 127 < first < 192 and len(data) > 1 and not 192 <= data[1] <= 223:
            try:
                packet = unprotect(data)
            except pylibsrtp.Error:  # replay, authentication
                return
            on_rtp(packet)
            return
        original(data, addr)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign,assignment]

    async def uninstall() -> None:
        protocol.datagram_received = original  # type: ignore[method-assign]

    return uninstall
