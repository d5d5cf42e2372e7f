"""Event classes: the manager.conf `read =` permission each AMI event is sent under, and
whether a user with given read classes is sent an event (the simulator's filter)."""

from __future__ import annotations

# The class (manager.conf `read =` permission) Asterisk 22 sends each event under, as its
# `Privilege:` header shows (`call,all`, `dialplan,all`, ...; checked against every real
# trace in tests/fixtures/ami). A user whose `read` lacks an event's class never gets it.
EVENT_CLASSES: dict[str, str] = {
    **dict.fromkeys(
        (
            "Newchannel", "Newstate", "Hangup", "HangupRequest", "SoftHangupRequest",
            "DialBegin", "DialState", "DialEnd", "BridgeCreate", "BridgeEnter", "BridgeLeave",
            "BridgeDestroy", "BridgeMerge", "OriginateResponse", "NewCallerid",
            "NewConnectedLine", "NewAccountCode", "LocalBridge", "LocalOptimizationBegin",
            "LocalOptimizationEnd", "MixMonitorStart", "MixMonitorStop", "MusicOnHoldStart",
            "MusicOnHoldStop", "DeviceStateChange", "ChanSpyStart", "ChanSpyStop", "Hold",
            "Unhold", "Rename",
        ),
        "call",
    ),
    "VarSet": "dialplan",
    "Newexten": "dialplan",
    "UserEvent": "user",
    "Cdr": "cdr",
    "CEL": "cel",
    "DTMFBegin": "dtmf",
    "DTMFEnd": "dtmf",
    "RTCPSent": "reporting",
    "RTCPReceived": "reporting",
    "FullyBooted": "system",
    "Shutdown": "system",
    "Reload": "system",
    "QueueMemberStatus": "agent",
    "SuccessfulAuth": "security",
    "FailedACL": "security",
    "InvalidPassword": "security",
    "ChallengeResponseFailed": "security",
    "RequestBadFormat": "security",
}  # fmt: skip


def event_class(name: str) -> str:
    """The read class of an event (`call` for any event this table does not name)."""
    return EVENT_CLASSES.get(name, "call")


def read_classes(read: str) -> frozenset[str]:
    """`read = call,cdr,user` (manager.conf) -> {"call", "cdr", "user"}; `all` stays `all`."""
    return frozenset(c.strip().lower() for c in read.split(",") if c.strip())


def may_read(classes: frozenset[str], event_cls: str) -> bool:
    """Whether a user with these read classes is sent events of `event_cls`."""
    return "all" in classes or event_cls in classes
