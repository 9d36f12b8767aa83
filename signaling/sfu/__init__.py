"""SFU media core: aiortc peer connections, raw Opus forwarding, K fixed audio slots.

API (all typed; messages are frozen dataclasses, states are enums)::

    sfu = Sfu(SfuSettings(audio_slots=3, ice_gather_addresses=("10.0.0.5",),
                          public_ip="203.0.113.7", udp_port_min=40000, udp_port_max=49999,
                          ice_servers=(IceServer(("stun:stun.example.org:3478",)),)))
    session = await sfu.open(room_id, user_id, on_closed=callback)  # -> Session
    answer_sdp = await session.apply_offer(offer_sdp)    # first offer and every re-offer
    await session.add_candidate(IceCandidateInit(...))   # trickled client candidate / None
    sfu.set_audible(room_id, user_id, True)              # on stage and not muted
    unsubscribe = sfu.on_active_speakers(room_id, callback)   # ActiveSpeakers, <= 4/s
    await session.close();  await sfu.close_room(room_id);  await sfu.close()

* ``Sfu`` is owned by the application (create it at startup, ``await close()`` at
  shutdown). It checks the aiortc internals it needs when constructed
  (:func:`aiortc_internals.verify_internals`). No module-level state.
* ``Session`` is one participant's single peer connection in one room; its
  ``state`` is a :class:`SessionState`. Opening a second session for the same
  (room, user) closes the first with ``CloseReason.REPLACED`` (reconnects).
* ``on_closed(SessionClosed)`` is called once per session, whatever ended it:
  ``CLOSED`` (the app), ``REPLACED``, ``PEER_LEFT`` (DTLS close from the client),
  ``FAILED`` (ICE/DTLS failure, consent expired), ``CONNECT_TIMEOUT``,
  ``SILENT`` (nothing received for ``silence_timeout``), ``SHUTDOWN``.
* ``set_audible`` is the server's word on who is heard: audio of a user who is not
  audible is dropped at the very next packet, whatever their browser sends.
  The flag is kept per room until set False or the room is closed.
* Rooms exist while they have sessions, audible users or subscribers.

Negotiation: the client always offers, the SFU always answers.

1. Join (listener): the client creates its RTCPeerConnection with the
   ``iceServers`` of :meth:`SfuSettings.ice_servers_json`, adds exactly K
   (``audio_slots``) ``addTransceiver("audio", {direction: "recvonly"})``, and
   sends the offer. ``apply_offer`` answers ``sendonly`` on those K m-lines; each
   carries the slot's SSRC (``a=ssrc``), the same for every listener of the room.
   Every remote track the client gets is one slot; it just plays all K.
2. Candidates: the answer contains all server candidates and
   ``a=end-of-candidates`` (the server gathers before answering; nothing to
   trickle back). Client candidates may be in the offer or trickled with
   ``add_candidate`` (None or an empty candidate string = end of candidates).
3. Promotion: the server calls ``set_audible(room, user, True)`` and tells the
   client, which adds ``addTransceiver(micTrack, {direction: "sendonly"})`` (not
   ``addTrack``: that could reuse a slot transceiver) and re-offers on the same
   connection. The answer is ``recvonly`` on that m-line. No reconnect.
4. Demotion / mute: ``set_audible(room, user, False)``; takes effect at once. The
   client may then set that transceiver's direction to ``inactive`` and re-offer.
5. Offers that break the contract raise :class:`OfferError` (first offer without
   exactly K recvonly audio m-lines, slot m-lines dropped, no Opus).

Media path: a speaker's Opus RTP is taken raw below aiortc's
``RTCRtpReceiver._handle_rtp_packet`` (nothing is depayloaded or decoded), metered
by its RFC 6464 level, mapped to a slot (:mod:`.slots`: the K loudest audible
speakers, with hysteresis, deterministic), rewritten onto the slot's continuous
stream (:mod:`.munger`), serialized once per payload type, then for each listener
SRTP-protected with that listener's keys and sent with one ``sendto`` on its
selected ICE pair (:mod:`.forwarder`). Nobody receives their own audio (their
outlet is skipped for their slot). One background task per ``Sfu`` does slot
selection, active speakers, RTCP (sender reports for the slots, receiver reports
to speakers) and timeouts; aioice keeps doing ICE consent freshness.
All aiortc/aioice internals are in :mod:`.aiortc_internals`.
"""

from .settings import (
    ActiveSpeakers,
    CloseReason,
    IceCandidateInit,
    IceServer,
    SessionClosed,
    SessionState,
    SfuSettings,
)
from .sfu import OfferError, Session, Sfu
from .slots import SlotPolicy

__all__ = [
    "ActiveSpeakers",
    "CloseReason",
    "IceCandidateInit",
    "IceServer",
    "OfferError",
    "Session",
    "SessionClosed",
    "SessionState",
    "Sfu",
    "SfuSettings",
    "SlotPolicy",
]
