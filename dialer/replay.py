"""Replay a captured AMI byte stream through the parser, the typed events and the call
tracker, and say what happened to every dial attempt ("why was this call marked busy?").

Input: `NAME.ami`, the bytes received from Asterisk (banner, then messages). Optional
siblings: `NAME.actions`, the bytes the client sent (the Originates tell each attempt's id,
seat, number and flow; a Hangup action marks a hangup by action; an Originate answered with
`Response: Error` failed synchronously), and `NAME.timeline.jsonl`, one line per message in
either direction with its time `t` (seconds), which gives ring and talk durations and puts
actions and events in their real order. Without the timeline, actions are applied first and
durations are unknown (None); without the actions, attempts are discovered from the
OriginateResponse ActionIDs and `ATTEMPT_ID` variables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dialer.ami.events import EventDecoder
from dialer.ami.protocol import AmiParser, Message
from dialer.calls import (
    DEFAULT_EARLY_HANGUP_SECONDS,
    CallResult,
    CallTracker,
    Mode,
    infer_mode,
    resource,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TraceFiles:
    ami: Path
    actions: Path | None
    timeline: Path | None

    @classmethod
    def beside(cls, ami: Path, use_actions: bool = True, use_timeline: bool = True) -> TraceFiles:
        stem = ami.name.removesuffix(".ami")
        actions = ami.with_name(stem + ".actions")
        timeline = ami.with_name(stem + ".timeline.jsonl")
        return cls(
            ami=ami,
            actions=actions if use_actions and actions.exists() else None,
            timeline=timeline if use_timeline and timeline.exists() else None,
        )


def originate_variables(action: Message) -> dict[str, str]:
    """Variables of an Originate as Asterisk applies them: one `Variable:` header may hold
    several, comma-separated (the 02 trace shows Asterisk splitting them)."""
    out: dict[str, str] = {}
    for header in action.getall("Variable"):
        for item in header.split(","):
            name, sep, value = item.partition("=")
            if sep:
                out[name.strip()] = value
    return out


class Replayer:
    """Feeds actions (what the dialer sent) and received bytes into a tracker."""

    def __init__(self, early_hangup_seconds: float = DEFAULT_EARLY_HANGUP_SECONDS) -> None:
        self.tracker = CallTracker(
            early_hangup_seconds=early_hangup_seconds, discover_unregistered=True
        )
        self.decoder = EventDecoder()
        self.parser = AmiParser()
        self.results: list[CallResult] = []
        self.order: dict[str, int] = {}
        self._originates: set[str] = set()
        self.events = 0

    def action(self, msg: Message, now: float | None) -> None:
        name = msg.get("Action", "") or ""
        if name.lower() == "originate":
            action_id = msg.get("ActionID")
            if not action_id:
                return
            self._originates.add(action_id)
            self.order.setdefault(action_id, len(self.order))
            channel = msg.get("Channel")
            exten = msg.get("Exten")
            application = msg.get("Application")
            variables = originate_variables(msg)
            mode = infer_mode(exten, application, variables)
            if mode == Mode.SEAT_FIRST:
                seat, number = resource(channel), variables.get("NUMBER") or exten
            else:
                seat, number = variables.get("SEAT"), resource(channel)
            is_async = (msg.get("Async") or "").lower() in ("true", "yes", "1")
            self.tracker.register(
                action_id,
                mode,
                seat=seat,
                number=number,
                started_at=now,
                channel=channel,
                channel_id=msg.get("ChannelId"),
                expect_originate_response=is_async,
            )
        elif name.lower() == "hangup":
            channel = msg.get("Channel")
            if channel:
                self.tracker.note_hangup_action(channel=channel)

    def received(self, data: bytes, now: float | None) -> None:
        for msg in self.parser.feed(data):
            self.message(msg, now)

    def message(self, msg: Message, now: float | None) -> None:
        if "Event" in msg:
            self.events += 1
            self._collect(self.tracker.handle(self.decoder.decode(msg), now))
        elif msg.get("Response") == "Error" and msg.action_id in self._originates:
            self._collect(
                self.tracker.originate_failed(msg.action_id or "", msg.get("Message") or "", now)
            )

    def finish(self, now: float | None) -> list[CallResult]:
        self._collect(self.tracker.flush(now))
        unknown = len(self.order)
        return sorted(
            self.results,
            key=lambda r: self.order.get(r.attempt_id or "", unknown),
        )

    def _collect(self, results: list[CallResult]) -> None:
        for result in results:
            if result.attempt_id is not None:
                self.order.setdefault(result.attempt_id, len(self.order))
            self.results.append(result)


def _timeline(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def replay(
    files: TraceFiles, early_hangup_seconds: float = DEFAULT_EARLY_HANGUP_SECONDS
) -> list[CallResult]:
    """Every attempt of the trace, in the order the dialer started them."""
    ami = files.ami.read_bytes()
    actions = files.actions.read_bytes() if files.actions is not None else b""
    rep = Replayer(early_hangup_seconds)
    action_parser = AmiParser(expect_banner=False)
    now: float | None = None
    if files.timeline is not None:
        fed = 0
        for entry in _timeline(files.timeline):
            t = entry.get("t")
            now = float(t) if isinstance(t, int | float) else now
            off, length = int(str(entry.get("off", 0))), int(str(entry.get("len", 0)))
            if entry.get("dir") == "send":
                for msg in action_parser.feed(actions[off : off + length]):
                    rep.action(msg, now)
            elif entry.get("dir") == "recv":
                if off != fed:  # a gap in the timeline: never drop bytes
                    log.warning("timeline skips bytes %d..%d of %s", fed, off, files.ami)
                    rep.received(ami[fed:off], now)
                rep.received(ami[off : off + length], now)
                fed = off + length
        if fed < len(ami):
            rep.received(ami[fed:], now)
    else:
        for msg in action_parser.feed(actions):
            rep.action(msg, None)
        rep.received(ami, None)
    return rep.finish(now)


def result_line(result: CallResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False)
