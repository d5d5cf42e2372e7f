"""The example Asterisk configuration (docker/asterisk/) keeps the specialist's identity away
from the carrier (issue 11, finding 3): parsed here so that a regression is caught."""

from __future__ import annotations

import re
from pathlib import Path

ASTERISK = Path(__file__).resolve().parent.parent / "docker" / "asterisk"
_HEADER = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?\s*$")


def asterisk_sections(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Sections of an Asterisk .conf in order, templates applied (`[name](!,tpl)` makes a
    template, `[name](tpl)` inherits from it); names may repeat (one per object type)."""
    templates: dict[str, dict[str, str]] = {}
    sections: list[tuple[str, dict[str, str], bool]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        m = _HEADER.match(line)
        if m:
            name, opts = m.group(1), [o.strip() for o in (m.group(2) or "").split(",") if o]
            options: dict[str, str] = {}
            for tpl in (o for o in opts if o != "!"):
                options.update(templates[tpl])
            sections.append((name, options, "!" in opts))
            if "!" in opts:
                templates[name] = options
            continue
        key, sep, value = line.partition("=")
        if sep and sections:
            sections[-1][1][key.strip().rstrip(">").strip()] = value.strip()
    return [(name, opts) for name, opts, template in sections if not template]


def _endpoint(name: str) -> dict[str, str]:
    (ep,) = [
        o
        for n, o in asterisk_sections(ASTERISK / "pjsip.conf")
        if n == name and o.get("type") == "endpoint"
    ]
    return ep


def test_the_carrier_endpoint_sends_no_identity_and_no_connected_line_updates() -> None:
    carrier = _endpoint("carrier")
    # Asterisk 22 defaults: send_connected_line yes, the others no; all must be explicit no.
    for option in ("send_connected_line", "send_pai", "send_rpid", "trust_id_outbound"):
        assert carrier.get(option) == "no", option


def test_seats_are_dialled_without_passing_their_connected_line_to_the_customer() -> None:
    code = [
        line.split(";", 1)[0]
        for line in (ASTERISK / "extensions.conf").read_text(encoding="utf-8").splitlines()
    ]
    seat_dials = [line for line in code if "Dial(PJSIP/${SEAT}" in line]
    assert seat_dials, "connect-seat must dial the seat"
    for line in seat_dials:
        args = line.split("Dial(", 1)[1].rsplit(")", 1)[0]
        options = args.rsplit(",", 1)[1] if args.count(",") >= 2 else ""
        assert "I" in options, line
    assert not any("CONNECTEDLINE(" in line for line in code)


def test_the_parser_applies_templates_and_keeps_objects_apart(tmp_path: Path) -> None:
    conf = tmp_path / "pjsip.conf"
    conf.write_text(
        "[tpl](!)\ntype = endpoint\nsend_pai = yes ; comment\n"
        "[carrier]\ntype = aor\n[carrier](tpl)\nsend_pai = no\n",
        encoding="utf-8",
    )
    assert asterisk_sections(conf) == [
        ("carrier", {"type": "aor"}),
        ("carrier", {"type": "endpoint", "send_pai": "no"}),
    ]
