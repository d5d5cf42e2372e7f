"""The AMI wire format, with no I/O: bytes in, messages out; actions in, bytes out.

What a real Asterisk 22 sends (see tests/fixtures/ami): a banner line without an empty line
after it, then CRLF `Key: Value` lines ended by an empty line. Values are raw UTF-8 and a
TCP read may end inside a multi-byte character, so messages are decoded whole, never per
read. Keys repeat (`Variable`, `Output`), values may be empty, and old-style command
output (`Response: Follows`) carries bare lines up to `--END COMMAND--`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BANNER_PREFIX = b"Asterisk Call Manager"
_SEP = b"\r\n\r\n"
_END_COMMAND = "--END COMMAND--"


class MissingHeader(KeyError):
    """A header the caller relies on is absent from a message."""

    def __init__(self, key: str, message: Message) -> None:
        super().__init__(key)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"AMI message has no {self.key!r} header: {self.message.first_line()}"


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message: headers in wire order, repeated keys kept."""

    headers: tuple[tuple[str, str], ...]
    _first: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]]) -> Message:
        first: dict[str, str] = {}
        for k, v in pairs:
            if k not in first:
                first[k] = v
        return cls(tuple(pairs), first)

    def __getitem__(self, key: str) -> str:
        try:
            return self._first[key]
        except KeyError:
            raise MissingHeader(key, self) from None

    def __contains__(self, key: object) -> bool:
        return key in self._first

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._first.get(key, default)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.headers if k == key]

    @property
    def kind(self) -> str:
        """'event', 'response' or 'action' (for messages a server parses)."""
        if "Event" in self._first:
            return "event"
        if "Response" in self._first:
            return "response"
        if "Action" in self._first:
            return "action"
        return "unknown"

    @property
    def name(self) -> str:
        """The event name, the response status or the action name."""
        return (
            self._first.get("Event")
            or self._first.get("Response")
            or self._first.get("Action")
            or ""
        )

    @property
    def action_id(self) -> str | None:
        return self._first.get("ActionID")

    def first_line(self) -> str:
        if not self.headers:
            return "<empty>"
        k, v = self.headers[0]
        return f"{k}: {v}"

    def to_bytes(self) -> bytes:
        return encode_pairs(self.headers)

    def as_dict(self) -> dict[str, str | list[str]]:
        out: dict[str, str | list[str]] = {}
        for k, v in self.headers:
            prev = out.get(k)
            if prev is None:
                out[k] = v
            elif isinstance(prev, list):
                prev.append(v)
            else:
                out[k] = [prev, v]
        return out


def _parse_block(block: bytes) -> Message:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Keep the message: one bad byte in a caller name must not lose a Hangup.
        log.warning("AMI message with invalid UTF-8 (%s), decoded with replacement: %r", exc, block[:200])
        text = block.decode("utf-8", errors="replace")
    pairs: list[tuple[str, str]] = []
    follows = False
    for line in text.split("\r\n"):
        idx = line.find(":")
        if idx > 0 and not (follows and pairs and " " in line[:idx]):
            key = line[:idx]
            value = line[idx + 1 :]
            if value.startswith(" "):
                value = value[1:]
            pairs.append((key, value))
            if key == "Response" and value == "Follows":
                follows = True
        elif line == _END_COMMAND:
            continue
        elif follows:
            pairs.append(("Output", line))
        elif line:
            log.warning("AMI line without a key ignored: %r", line[:200])
    return Message.from_pairs(pairs)


class AmiParser:
    """Incremental parser: `feed()` any chunk of bytes, get the complete messages back."""

    def __init__(self, expect_banner: bool = True) -> None:
        self._buf = bytearray()
        self._expect_banner = expect_banner
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        if self._expect_banner:
            nl = buf.find(b"\r\n")
            if nl < 0:
                if len(buf) >= len(BANNER_PREFIX) and not buf.startswith(BANNER_PREFIX):
                    self._expect_banner = False  # not a banner: a plain message stream
                else:
                    return []
            else:
                if buf.startswith(BANNER_PREFIX):
                    self.banner = bytes(buf[:nl]).decode("utf-8", errors="replace")
                    del buf[: nl + 2]
                self._expect_banner = False
        out: list[Message] = []
        start = 0
        while True:
            end = buf.find(_SEP, start)
            if end < 0:
                break
            if end > start:
                out.append(_parse_block(bytes(buf[start:end])))
            start = end + 4
        if start:
            del buf[:start]
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)


def parse_stream(data: bytes) -> tuple[str | None, list[Message]]:
    """Parse a whole captured stream (banner, then messages)."""
    parser = AmiParser()
    msgs = parser.feed(data)
    return parser.banner, msgs


def _check(text: str, what: str) -> None:
    if "\r" in text or "\n" in text:
        # A CR/LF in a value would let a customer's name inject a second action.
        raise ValueError(f"AMI {what} must not contain CR or LF: {text[:40]!r}")


def encode_pairs(pairs: Iterable[tuple[str, str]]) -> bytes:
    parts: list[str] = []
    for k, v in pairs:
        _check(k, "header name")
        _check(v, "header value")
        parts.append(f"{k}: {v}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


HeaderValue = str | int | float | bool | Sequence[str] | Mapping[str, str]


def action_pairs(action: str, headers: Mapping[str, HeaderValue] | None = None) -> list[tuple[str, str]]:
    """Headers of an action in order. Lists repeat the key; a mapping under `Variable`
    becomes one `Variable: K=V` header per entry (one header with commas would be split by
    Asterisk itself, see the 02 trace)."""
    pairs: list[tuple[str, str]] = [("Action", action)]
    for key, value in (headers or {}).items():
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, Mapping):
            pairs.extend((key, f"{k}={v}") for k, v in value.items())
        elif isinstance(value, str):
            pairs.append((key, value))
        elif isinstance(value, int | float):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(v)) for v in value)
    return pairs


def encode_action(action: str, headers: Mapping[str, HeaderValue] | None = None) -> bytes:
    return encode_pairs(action_pairs(action, headers))


def iter_messages(chunks: Iterable[bytes]) -> Iterator[Message]:
    parser = AmiParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
