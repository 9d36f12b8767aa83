"""SFU media core (docstring written below)."""

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
