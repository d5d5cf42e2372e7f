"""The AMI wire format, with no I/O: bytes in, messages out; actions in, bytes out.

What a real Asterisk 22 sends (see tests/fixtures/ami): a banner line without an empty line
after it, then CRLF `Key: Value` lines ended by an empty line. Values are raw UTF-8 and a
TCP read may end inside a multi-byte character, so messages are decoded whole, never per
read. Keys repeat (`Variable`, `Output`), values may be empty, and old-style command
output (`Response: Follows`) carries bare lines up to `--END COMMAND--`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence

log = logging.getLogger(__name__)

BANNER_PREFIX = b"Asterisk Call Manager"
_SEP = b"\r\n\r\n"
_END_COMMAND = "--END COMMAND--"
# Endless argument streams for `map(str.split, lines, _COLON_SPACE, _ONE)`.
_COLON_SPACE = itertools.repeat(": ")
_ONE = itertools.repeat(1)


class MissingHeader(KeyError):
    """A header the caller relies on is absent from a message."""

    def __init__(self, key: str, message: Message) -> None:
        super().__init__(key)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"AMI message has no {self.key!r} header: {self.message.first_line()}"


class Message:
    """One AMI message: headers in wire order, repeated keys kept. Immutable.

    The parser only cuts the stream into message texts; a message's headers are split the
    first time anything reads them. The connection routes on the first line and, for the
    list events of a pending action, on `ActionID`, both read straight from the text, so an
    event nobody looks into (most of a busy PBX's `Newexten`, `DeviceStateChange`, `RTCP*`)
    is never split into headers. Reading them gives exactly what an eager parse would: the
    same functions run on the same text, only later.

    Most messages have no repeated key; for those only the first-value dict is built and
    `headers` is derived from it on first use (the dict keeps wire order).
    """

    __slots__ = ("_dict", "_headers", "_raw")
    _raw: str | None  # the message's text, until its headers are split
    _dict: dict[str, str] | None
    _headers: tuple[tuple[str, str], ...] | None

    def __init__(self, headers: Iterable[tuple[str, str]] = ()) -> None:
        pairs = tuple((k, v) for k, v in headers)
        first: dict[str, str] = {}
        for k, v in pairs:
            if k not in first:
                first[k] = v
        _set(self, "_raw", None)
        _set(self, "_dict", first)
        _set(self, "_headers", pairs)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Message:
        return cls(pairs)

    @classmethod
    def _from_text(cls, text: str) -> Message:
        """A message from its text (no separator), headers split on first use."""
        msg = _new(cls)
        _set(msg, "_raw", text)
        _set(msg, "_dict", None)
        _set(msg, "_headers", None)
        return msg

    @property
    def _first(self) -> dict[str, str]:
        """The first-value header dict (read-only use)."""
        first = self._dict
        if first is None:
            first = self._split()
        return first

    def _split(self) -> dict[str, str]:
        text = self._raw
        assert text is not None
        lines = text.split("\r\n")
        try:
            first: dict[str, str] | None = dict(map(str.split, lines, _COLON_SPACE, _ONE))
        except ValueError:  # a line without ": "
            first = None
        if (
            first is None
            or len(first) != len(lines)
            or "" in first
            or first.get("Response") == "Follows"
        ):
            general = _parse_text_general(text)  # a repeated or empty key, command output
            first = general._first
            _set(self, "_headers", general._headers)
        _set(self, "_dict", first)
        _set(self, "_raw", None)  # the dict holds the values now
        return first

    @property
    def event_name(self) -> str | None:
        """`Event` without splitting the headers when it is the first line, as Asterisk
        writes it."""
        text = self._raw
        if text is not None and text.startswith("Event: "):
            eol = text.find("\r\n")
            return text[7:] if eol < 0 else text[7:eol]
        return self._first.get("Event")

    def _peek(self, key: str) -> str | None:
        """`get(key)` for an event, without splitting its headers when the key's first line
        is a plain `Key: value` after the first line; anything less plain splits them."""
        text = self._raw
        if text is None or not text.startswith("Event: ") or "\r\nResponse: Follows" in text:
            return self._first.get(key)
        at = text.find(f"\r\n{key}:")
        if at < 0:
            return None
        start = at + len(key) + 3
        if text[start : start + 1] != " ":
            return self._first.get(key)  # `Key:` with no space: the general parser's rules
        eol = text.find("\r\n", start)
        return text[start + 1 :] if eol < 0 else text[start + 1 : eol]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Message is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Message is immutable")

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        headers = self._headers
        if headers is None:
            first = self._first  # may set _headers (repeated keys)
            headers = self._headers
            if headers is None:
                headers = tuple(first.items())
                _set(self, "_headers", headers)
        return headers

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.headers == other.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"Message(headers={self.headers!r})"

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
        return self._peek("ActionID")

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


_new = object.__new__
_set = object.__setattr__


def _parse_block(block: bytes) -> Message:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Keep the message: one bad byte in a caller name must not lose a Hangup.
        log.warning(
            "AMI message with invalid UTF-8 (%s), decoded with replacement: %r", exc, block[:200]
        )
        text = block.decode("utf-8", errors="replace")
    return _parse_text(text)


def _parse_text(text: str) -> Message:
    """A message from its text, headers split now. The fast path (`Message._split`) takes
    the shape nearly every real message has: `Key: value` lines with distinct, non-empty
    keys, not `Response: Follows`. Anything else goes to the general parser, which defines
    the semantics and gives the same result for these messages (a bare CR or LF stays
    inside its value in both)."""
    msg = Message._from_text(text)
    msg._split()
    return msg


def _split_line(line: str) -> tuple[str, str] | None:
    """`Key: value` splits at the first ": " (so a value may contain ": "); a line with
    no ": " splits at its first colon (`Key:` has an empty value)."""
    idx = line.find(": ")
    if idx > 0:
        return line[:idx], line[idx + 2 :]
    if idx < 0:
        idx = line.find(":")
        if idx > 0:
            return line[:idx], line[idx + 1 :]
    return None


def _parse_text_general(text: str) -> Message:
    pairs: list[tuple[str, str]] = []
    lines = text.split("\r\n")
    follows = False
    for i, line in enumerate(lines):
        pair = _split_line(line)
        if pair is not None and not (follows and " " in pair[0]):
            pairs.append(pair)
            if pair == ("Response", "Follows"):
                follows = True
        elif follows:
            # Old-style command output: free text up to `--END COMMAND--`, with lines
            # ended by a bare LF; from the first non-header line on, all of it is output.
            for out in "\r\n".join(lines[i:]).split("\n"):
                out = out.removesuffix("\r")
                if out != _END_COMMAND:
                    pairs.append(("Output", out))
            while pairs and pairs[-1] == ("Output", ""):
                pairs.pop()
            break
        elif line == _END_COMMAND:
            continue
        elif line:
            log.warning("AMI line without a key ignored: %r", line[:200])
    return Message(pairs)


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
        # Everything up to the last separator is whole messages: decode it in one go (a
        # multi-byte character never straddles a separator), then split the text. Decoding
        # through a memoryview saves two copies of the region.
        end = buf.rfind(_SEP)
        if end < 0:
            return []
        try:
            with memoryview(buf) as view:
                text = str(view[:end], "utf-8")
        except UnicodeDecodeError:
            region = bytes(buf[:end])
            del buf[: end + 4]
            return [_parse_block(b) for b in region.split(_SEP) if b]
        del buf[: end + 4]
        # One object per message and nothing else: headers are split on first use.
        new = _new
        set_ = _set
        out: list[Message] = []
        append = out.append
        for block in text.split("\r\n\r\n"):
            if block:
                msg = new(Message)
                set_(msg, "_raw", block)
                set_(msg, "_dict", None)
                set_(msg, "_headers", None)
                append(msg)
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


def action_pairs(
    action: str, headers: Mapping[str, HeaderValue] | None = None
) -> list[tuple[str, str]]:
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
