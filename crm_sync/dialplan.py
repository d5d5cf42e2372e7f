"""Values that end up in Asterisk's dialplan or an Originate: a seat device, a sound name, a
caller ID. Asterisk splits `Dial()` arguments on `&` (several devices), `,` and `|`
(arguments), takes `;` as a comment and CR/LF as the end of an AMI header, and plays any
path it is given; so each value is held to the one shape the desk needs, wherever it comes
from (the API, the settings, the command line). Pure checks, plus pydantic types for models.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Annotated

from pydantic import AfterValidator, Field

from crm_sync.api import pattern

# One endpoint per technology. PJSIP: `PJSIP/8001` (an `@` would dial a number through a trunk:
# toll fraud). Local (the lab): `Local/8001@seats`.
_ENDPOINT = r"[A-Za-z0-9_.+-]{1,64}"
_SEAT_SHAPES: dict[str, re.Pattern[str]] = {
    "PJSIP": re.compile(rf"PJSIP/{_ENDPOINT}"),
    "Local": re.compile(rf"Local/{_ENDPOINT}@[A-Za-z0-9_-]{{1,64}}"),
}
# ami[].channel_family -> the technology of its seats.
TECHNOLOGY = {"pjsip": "PJSIP", "local": "Local"}
SEAT_EXAMPLE = "PJSIP/8001"

_SOUND = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,7}")
_SOUND_RULE = (
    "a message is a sound name such as custom/renewal-reminder: letters, digits, "
    "- and _ in /-separated parts, without a leading /, .. or a file extension"
)
_NUMBER = r"\+?[0-9]{1,20}"
_CALLER_ID = re.compile(rf'{_NUMBER}|"[^"<>\\\x00-\x1f\x7f]{{1,60}}" <{_NUMBER}>')


def seat_problem(device: str, technologies: Iterable[str] = TECHNOLOGY.values()) -> str | None:
    """Why `device` is not one seat endpoint of one of `technologies`; None if it is."""
    techs = list(technologies)
    tech, slash, _ = device.partition("/")
    if not slash or tech not in _SEAT_SHAPES:
        return f"a seat is one device such as {SEAT_EXAMPLE} (technology {' or '.join(techs)})"
    if tech not in techs:
        return f"seats here are {' or '.join(techs)} devices, not {tech}"
    if not _SEAT_SHAPES[tech].fullmatch(device):
        example = "Local/8001@seats" if tech == "Local" else SEAT_EXAMPLE
        return (
            f"a seat is one {tech} endpoint such as {example}: letters, digits, _ . + - "
            "(no &, @ of a trunk, spaces, commas or line breaks)"
        )
    return None


def sound_problem(name: str) -> str | None:
    """Why `name` is not a sound name such as custom/renewal-reminder; None if it is."""
    if not _SOUND.fullmatch(name):
        return _SOUND_RULE
    return None


def caller_id_problem(value: str) -> str | None:
    """Why `value` is not `95500` or `"Name" <95500>`; None if it is."""
    if not _CALLER_ID.fullmatch(value):
        return (
            'a caller ID is a number (95500) or "Name" <number> ("续保专员" <95500>), '
            "without control characters, quotes or <> in the name"
        )
    return None


def _checked(problem_of: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


SeatDevice = Annotated[
    str,
    Field(
        max_length=100,
        examples=[SEAT_EXAMPLE],
        pattern=pattern(
            r"^(PJSIP|Local)/[A-Za-z0-9_.+@-]+$",
            f"a seat is one device such as {SEAT_EXAMPLE}: letters, digits, _ . + - after the /",
        ),
    ),
    _checked(seat_problem),
]
SoundName = Annotated[
    str,
    Field(
        max_length=200,
        examples=["custom/renewal-reminder"],
        pattern=pattern(rf"^{_SOUND.pattern}$", _SOUND_RULE),
    ),
    _checked(sound_problem),
]
CallerId = Annotated[
    str,
    Field(max_length=100, examples=['"续保专员" <95500>']),
    _checked(caller_id_problem),
]
