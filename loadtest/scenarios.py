"""Named presets for ``--scenario``: defaults that explicit options override."""

from __future__ import annotations

from typing import Any, Final

SCENARIOS: Final[dict[str, dict[str, Any]]] = {
    # Everyone joins as fast as the ramp allows; a short steady phase.
    "join-storm": {"ramp": 2000.0, "duration": 5.0, "probe_interval": 1.0},
    # A full room, steady: speakers talk, the host probes, hands go up and down.
    "steady-room": {"ramp": 200.0, "duration": 60.0, "probe_interval": 1.0},
    # Speakers come and go; hands in the queue are invited and moved back.
    "stage-churn": {
        "ramp": 200.0,
        "duration": 60.0,
        "probe_interval": 1.0,
        "churn": True,
        "churn_interval": 1.5,
        "hand_raisers": 10,
    },
    # cluster only: SIGKILL the last node a while into the steady phase; its bots
    # reconnect to the others.
    "node-kill": {"ramp": 200.0, "duration": 40.0, "probe_interval": 1.0, "kill_after": 8.0},
}

DEFAULTS: Final[dict[str, Any]] = {
    "listeners": 1000,
    "media_listeners": 0,
    "speakers": 1,
    "hand_raisers": 0,
    "ramp": 200.0,
    "duration": 30.0,
    "probe_interval": 1.0,
    "churn": False,
    "churn_interval": 1.5,
    "kill_after": None,
    "rooms": 1,
    "seed": 1,
}
