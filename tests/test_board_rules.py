"""The board's pure rules and the listening-in Originate, without I/O: the ChanSpy action is
compared with what the real Asterisk was sent in the pjsip_chanspy traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from callcenter.board import rules
from callcenter.board.config import BoardSettings
from dialer.originate import DialPlan
from dialer.supervise import SpyRequest, customer_channel, spied_channel, spy_originate

# Copies of ../shared/ami-traces/pjsip (the real Asterisk 22 captures).
TRACES = Path(__file__).parent / "fixtures" / "ami" / "pjsip" / "chanspy"
NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CFG = BoardSettings()


def _trace_spy_action(name: str) -> dict[str, str]:
    text = (TRACES / f"pjsip_chanspy_{name}.actions").read_text("utf-8")
    for block in text.replace("\r\n", "\n").split("\n\n"):
        headers = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
        if headers.get("ActionID", "").startswith("spy-"):
            return headers
    raise AssertionError(f"no spy Originate in {name}")


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
def test_the_spy_originate_is_what_the_traces_sent_asterisk(mode: str) -> None:
    sent = _trace_spy_action(mode)
    channel = sent["Data"].split(",", 1)[0]
    req = SpyRequest(mode, sent["Channel"], channel, sent["ActionID"])
    ours = spy_originate(req, DialPlan(caller_id=sent["CallerID"]))
    assert {k: str(v) for k, v in ours.items()} == {
        k: v for k, v in sent.items() if k not in ("Action", "ActionID")
    }


def test_the_spied_channel_is_the_specialists_leg_or_the_customers_on_an_automatic_call() -> None:
    channels = ["PJSIP/carrier-00000004", "PJSIP/8001-00000003"]
    assert spied_channel(channels, "PJSIP/8001") == "PJSIP/8001-00000003"
    assert customer_channel(channels, "PJSIP/8001") == "PJSIP/carrier-00000004"
    assert spied_channel(["PJSIP/carrier-00000009"], None) == "PJSIP/carrier-00000009"
    assert spied_channel(["PJSIP/carrier-00000004"], "PJSIP/8001") is None, "seat not up yet"
    assert spied_channel(["PJSIP/80011-00000001"], "PJSIP/8001") is None, "another seat"


def test_a_wall_display_shows_a_masked_number() -> None:
    assert rules.mask_number("13800000037") == "138****0037"
    assert rules.mask_number("+8613800000037") == "+86*******0037"


def test_rates_answer_over_dialled_abandon_over_picked_up() -> None:
    assert rules.rate(1, 0) is None
    assert rules.abandon_rate(3, 97) == 0.03
    assert rules.abandon_rate(0, 0) is None


def _campaign(answered: int, abandoned: int) -> dict[str, object]:
    return {"kind": "renewal", "today": {"answered": answered, "abandoned": abandoned}}


def test_the_abandon_rate_warns_near_its_cap_and_alarms_at_it() -> None:
    assert rules.campaign_alerts([_campaign(98, 2)], CFG) == []  # 2 % < 80 % of 3 %
    warn = rules.campaign_alerts([_campaign(975, 25)], CFG)  # 2.5 %
    assert [(a["code"], a["level"]) for a in warn] == [("abandon_rate", "warn")]
    alarm = rules.campaign_alerts([_campaign(95, 5)], CFG)
    assert alarm[0]["level"] == "alarm" and alarm[0]["params"]["rate"] == 0.05
    assert rules.campaign_alerts([_campaign(9, 1)], CFG) == [], "too few calls to judge"


def test_a_seat_paused_past_the_threshold_is_an_alert() -> None:
    def seat(minutes: float) -> dict[str, object]:
        since = (NOW - timedelta(minutes=minutes)).isoformat()
        return {"specialist_id": 7, "seat": "PJSIP/8007", "state": "paused", "since": since}

    assert rules.seat_alerts([seat(14.9)], NOW, CFG) == []
    [alert] = rules.seat_alerts([seat(16)], NOW, CFG)
    assert alert["code"] == "seat_paused" and alert["params"]["minutes"] == 16


def test_the_deadline_alert_starts_before_17_and_is_an_alarm_after_it() -> None:
    deadline = NOW + timedelta(hours=1)
    assert rules.deadline_alert(0, deadline, NOW, CFG) == []
    assert rules.deadline_alert(5, deadline + timedelta(hours=2), NOW, CFG) == []
    [warn] = rules.deadline_alert(5, deadline, NOW, CFG)
    assert (warn["level"], warn["params"]["minutes_left"]) == ("warn", 60)
    [late] = rules.deadline_alert(5, NOW - timedelta(minutes=1), NOW, CFG)
    assert late["level"] == "alarm"


def test_old_undelivered_crm_messages_and_down_links_are_alerts() -> None:
    assert rules.outbox_alert(3, NOW - timedelta(minutes=9), NOW, CFG) == []
    [old] = rules.outbox_alert(3, NOW - timedelta(minutes=11), NOW, CFG)
    assert old["params"] == {"messages": 3, "minutes": 11}
    links = [{"server": "pbx1", "connected": False}, {"server": "pbx2", "connected": True}]
    assert [a["key"] for a in rules.link_alerts(links, ["host:1:ab"])] == [
        "link_down:pbx1",
        "process_silent:host:1:ab",
    ]


def test_a_process_is_stale_when_its_heartbeat_is_old() -> None:
    procs = [
        {"owner": "a", "at": (NOW - timedelta(seconds=5)).isoformat()},
        {"owner": "b", "at": (NOW - timedelta(seconds=25)).isoformat()},
    ]
    assert rules.stale_owners(procs, NOW, CFG) == ["b"]


def test_every_board_text_has_a_chinese_translation_and_english_ships_too() -> None:
    locale = Path(rules.__file__).with_name("locale")
    with (locale / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    for lang in ("zh_CN", "en"):
        with (locale / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            translated = {m.id for m in read_po(f, locale=lang) if m.id and m.string}
        assert template <= translated, f"{lang} lacks {sorted(template - translated)}"
