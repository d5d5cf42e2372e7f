"""The example Asterisk configuration (docker/asterisk/) keeps the specialist's identity away
from the carrier (issue 11, finding 3): parsed here so that a regression is caught."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialer import originate, prompts, transfer
from dialer.ami.protocol import HeaderValue
from dialer.originate import DialPlan

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


# --- the shipped dialplan against the dialer's actions and the real Asterisk 22 traces ------
# (issue 18: every context, extension, application and variable the dialer relies on exists
# in docker/asterisk/extensions.conf and was seen working on the Asterisk 22 of the traces)

# The traces as captured (../shared beside the repository); the copy in tests/fixtures lacks
# the later captures (key-2 redirect, GotoIf), so it is only the fallback.
_SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "ami-traces"
TRACES = _SHARED if _SHARED.is_dir() else Path(__file__).resolve().parent / "fixtures" / "ami"
_EXTEN = re.compile(r"^(exten|same)\s*=>\s*(.*)$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Set by Asterisk itself (channel variables and what Dial/Read/Playback set), or by
# [globals]: the dialplan may read them without the dialer setting them.
ASTERISK_SETS = {"EXTEN", "UNIQUEID", "CHANNEL", "DIALSTATUS", "HANGUPCAUSE", "READSTATUS"}
# MixMonitor's own: set on the channel it records (VarSet in the Asterisk 22 traces).
ASTERISK_SETS |= {"MIXMONITOR_FILENAME"}


@dataclass(frozen=True)
class Step:
    context: str
    exten: str
    app: str
    args: str


def dialplan(path: Path) -> list[Step]:
    """The priorities of an extensions.conf: (context, extension, application, arguments)."""
    steps: list[Step] = []
    context, exten = "", ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        header = _HEADER.match(line)
        if header:
            context = header.group(1)
            continue
        m = _EXTEN.match(line)
        if not m:
            continue
        parts = m.group(2).split(",", 2 if m.group(1) == "exten" else 1)
        if m.group(1) == "exten":
            exten, rest = parts[0].strip(), parts[2]
        else:
            rest = parts[1]
        app, _, args = rest.strip().partition("(")
        steps.append(Step(context, exten, app.strip(), args.rsplit(")", 1)[0]))
    return steps


def matches(pattern: str, exten: str) -> bool:
    """Asterisk's extension patterns (`_X.`, `_1X.`, `_8XXX`) and plain names."""
    if not pattern.startswith("_"):
        return pattern == exten
    classes = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}
    regex = "".join(classes.get(ch, re.escape(ch)) for ch in pattern[1:])
    return re.fullmatch(regex, exten) is not None


def trace_headers(name: str) -> set[str]:
    """Every value of header `name` in the real Asterisk 22 traces (both captures)."""
    values: set[str] = set()
    for path in [*TRACES.glob("*.ami"), *TRACES.glob("pjsip/*.ami")]:
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            if line.startswith(f"{name}: "):
                values.add(line[len(name) + 2 :].strip())
    return values


def originates() -> dict[str, dict[str, HeaderValue]]:
    """What the dialer sends for each kind of call, from the code that sends it."""
    plan = DialPlan()
    common = {"attempt_id": "att-1", "number": "13800000010", "lead_id": 7}
    return {
        "seat first": originate.seat_first(plan, seat="PJSIP/8001", **common),
        "customer first": originate.customer_first(plan, seat="PJSIP/8001", **common),
        "pooled": originate.customer_first(plan, seat="PJSIP/8001", pooled=True, **common),
        "pooled predictive": originate.pooled(plan, **common),
        "reminder": originate.reminder(plan, message=prompts.RENEWAL_REMINDER, **common),
        "callback": originate.callback(plan, **common),
    }


SHIPPED = dialplan(ASTERISK / "extensions.conf")


def test_every_originate_lands_on_an_extension_of_the_shipped_dialplan() -> None:
    for mode, headers in originates().items():
        if "Application" in headers:
            continue  # the reminder runs an application straight away (next test)
        context, exten = str(headers["Context"]), str(headers["Exten"])
        found = [s for s in SHIPPED if s.context == context and matches(s.exten, exten)]
        assert found, f"{mode}: no extension {exten} in [{context}] of extensions.conf"
    # the key-2 hand-over redirects the customer to connect-seat in the same context
    assert any(
        s.context == DialPlan().context and s.exten == transfer.CONNECT_EXTEN for s in SHIPPED
    )


def test_every_application_the_dialer_and_the_dialplan_use_ran_on_the_real_asterisk() -> None:
    seen = trace_headers("Application")
    used = {s.app for s in SHIPPED} | {
        str(h["Application"]) for h in originates().values() if "Application" in h
    }
    assert used, "no application found: the parser is broken"
    assert used <= seen, f"never seen working in the Asterisk 22 traces: {sorted(used - seen)}"


def test_every_variable_the_dialplan_reads_is_set_by_the_dialer_or_by_asterisk() -> None:
    sent: set[str] = set()
    for headers in originates().values():
        sent |= set(originate.variables_of(headers))
    sent |= {"SEAT", "SEAT_TIMEOUT"}  # Setvar before the key-2 Redirect (dialer.transfer)
    sent |= {transfer.RECORDING_VARIABLE}  # Setvar before a supervisor's move (dialer.transfer)
    sent |= {"HOLD_SECONDS"}  # optional: the dialplan's ${IF(...)} has a default
    globals_ = {
        key
        for name, opts in asterisk_sections(ASTERISK / "extensions.conf")
        if name == "globals"
        for key in opts
    }
    read_by_read_app = {s.args.split(",", 1)[0] for s in SHIPPED if s.app == "Read"}
    read = {v for s in SHIPPED for v in _VAR.findall(s.args)}
    unset = read - sent - ASTERISK_SETS - globals_ - read_by_read_app
    assert not unset, f"the dialplan reads variables nobody sets: {sorted(unset)}"
    # the dialer's own variable names were accepted by the real Asterisk (VarSet seen)
    assert {"ATTEMPT_ID", "SEAT", "SEAT_TIMEOUT", "HOLD_SECONDS", "LEAD_ID", "NUMBER"} <= (
        trace_headers("Variable")
    )


def test_the_variables_and_user_events_the_dialer_listens_for_come_from_asterisk() -> None:
    # MIXMONITOR_FILENAME names each recording, PLAYBACKSTATUS tells a failed prompt: both
    # are set by Asterisk itself, as the traces show.
    assert {"MIXMONITOR_FILENAME", "PLAYBACKSTATUS", "READSTATUS"} <= trace_headers("Variable")
    # The callback's key arrives as a UserEvent with a Key header (calls.py reads e.get("Key")).
    assert "CallbackResult" in trace_headers("UserEvent")
    events = [s.args for s in SHIPPED if s.app == "UserEvent"]
    callback = [a for a in events if a.startswith("CallbackResult,")]
    assert callback and all("Key: ${KEY}" in a for a in callback), events


def test_the_dialplan_parser_and_the_pattern_matcher_can_fail(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text(
        "[dialer]\nexten => _1X.,1,NoOp(x ${ATTEMPT_ID})\n same => n,Dial(PJSIP/${EXTEN},30)\n",
        encoding="utf-8",
    )
    steps = dialplan(conf)
    assert [(s.context, s.exten, s.app) for s in steps] == [
        ("dialer", "_1X.", "NoOp"),
        ("dialer", "_1X.", "Dial"),
    ]
    assert matches("_1X.", "13800000010") and not matches("_1X.", "23800000010")
    assert not matches("_X.", "connect-seat") and matches("callback", "callback")


# The module that provides each application and dialplan function (Asterisk 22's source).
MODULE_OF = {
    "Dial": "app_dial",
    "Playback": "app_playback",
    "MixMonitor": "app_mixmonitor",
    "Read": "app_read",
    "UserEvent": "app_userevent",
    "MusicOnHold": "res_musiconhold",
    "IF": "func_logic",
    "CDR": "func_cdr",
}
# Built into Asterisk's core (pbx_builtins, pbx_variables): no module to load.
CORE_APPS = {"Answer", "Hangup", "NoOp", "Set", "GotoIf", "Goto", "Wait"}
_FUNC = re.compile(r"\$\{([A-Z]+)\(")


def loaded_modules(path: Path) -> list[str]:
    """The `load => x.so` lines of a modules.conf, without `.so`."""
    return [
        line.split("=>", 1)[1].split(";", 1)[0].strip().removesuffix(".so")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("load") and "=>" in line
    ]


def test_every_application_and_function_of_the_dialplan_has_its_module_loaded() -> None:
    modules = set(loaded_modules(ASTERISK / "modules.conf"))
    apps = {s.app for s in SHIPPED}
    functions = {f for s in SHIPPED for f in _FUNC.findall(s.args)} | {
        m.group(1) for s in SHIPPED if (m := re.match(r"([A-Z]+)\(", s.args))
    }
    unknown = (apps - CORE_APPS - set(MODULE_OF)) | (functions - set(MODULE_OF))
    assert not unknown, f"add the module of {sorted(unknown)} to MODULE_OF and modules.conf"
    needed = {MODULE_OF[a] for a in apps - CORE_APPS} | {MODULE_OF[f] for f in functions}
    needed |= {"chan_pjsip", "res_pjsip", "pbx_config", "cdr_manager", "res_rtp_asterisk"}
    assert needed <= modules, f"not loaded by modules.conf: {sorted(needed - modules)}"


def test_the_modules_are_the_labs_that_ran_asterisk_22_or_named_as_not_tested() -> None:
    lab_conf = TRACES / "pjsip" / "conf" / "modules.conf"
    if not lab_conf.exists():
        pytest.skip("the lab's configuration is in ../shared/ami-traces only")
    lab = set(loaded_modules(lab_conf))
    ours = loaded_modules(ASTERISK / "modules.conf")
    not_in_lab = {
        "res_pjsip_registrar",
        "res_pjsip_authenticator_digest",
        "res_pjsip_outbound_authenticator_digest",
        "res_pjsip_nat",
    }
    assert set(ours) - lab == not_in_lab, sorted(set(ours) - lab)
    assert "autoload = no" in (ASTERISK / "modules.conf").read_text(encoding="utf-8")


def test_the_callback_hold_has_its_music_class_and_cdrs_reach_the_manager() -> None:
    classes = {name for name, _ in asterisk_sections(ASTERISK / "musiconhold.conf")}
    held = [s.args for s in SHIPPED if s.app == "MusicOnHold"]
    assert held and all(a.split(",", 1)[0] in classes for a in held), (held, classes)
    (default,) = [o for n, o in asterisk_sections(ASTERISK / "musiconhold.conf") if n == "default"]
    # the folder the prompts script fills (sounds/ is mounted as sounds/custom in compose)
    assert default["directory"] == "/var/lib/asterisk/sounds/custom/moh"
    script = (ASTERISK.parent.parent / "scripts" / "make-prompts.sh").read_text(encoding="utf-8")
    assert '"$dir/moh/hold.wav"' in script
    (cdr,) = [o for n, o in asterisk_sections(ASTERISK / "cdr_manager.conf") if n == "general"]
    assert cdr["enabled"] == "yes"
