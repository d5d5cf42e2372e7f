"""Values that reach Asterisk (a seat, a sound name, a caller ID) hold to one safe shape
wherever they enter: here the pure checks and the settings; the API and the CLI in
test_api_contract.py and test_specialists.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callcenter.settings import AmiServer, Settings
from crm_sync.dialplan import caller_id_problem, seat_problem, sound_problem


@pytest.mark.parametrize("seat", ["PJSIP/8001", "PJSIP/agent_7", "PJSIP/8001.b"])
def test_one_pjsip_endpoint_is_a_seat(seat: str) -> None:
    assert seat_problem(seat, ["PJSIP"]) is None


@pytest.mark.parametrize(
    "seat",
    [
        "PJSIP/8001&PJSIP/8002",  # Dial() rings both
        "PJSIP/13800000000@carrier",  # a number through the trunk
        "PJSIP/8001,30,tT",  # Dial() options
        "PJSIP/8001|x",
        "PJSIP/8001;comment",
        "PJSIP/8001\r\nAction: Originate",
        "PJSIP/",
        "SIP/8001",
        "DAHDI/g1/13800000000",
        "Local/8001@seats",  # not the configured technology
        "8001",
    ],
)
def test_anything_else_is_not_a_seat(seat: str) -> None:
    assert seat_problem(seat, ["PJSIP"]) is not None


def test_a_lab_seat_is_a_local_channel_with_its_context() -> None:
    assert seat_problem("Local/8001@seats", ["Local"]) is None
    assert seat_problem("Local/8001", ["Local"]) is not None


@pytest.mark.parametrize("name", ["renewal-reminder", "custom/renewal-reminder", "zh/cb_2"])
def test_a_sound_name_is_taken(name: str) -> None:
    assert sound_problem(name) is None


@pytest.mark.parametrize(
    "name",
    ["../etc/passwd", "/var/lib/asterisk/sounds/x", "custom/../x", "a&b", "x.wav", "a//b", ""],
)
def test_a_path_is_not_a_sound_name(name: str) -> None:
    assert sound_problem(name) is not None


@pytest.mark.parametrize("cid", ["95500", "+8695500", '"续保专员" <95500>'])
def test_a_caller_id_is_a_number_or_a_quoted_name_with_one(cid: str) -> None:
    assert caller_id_problem(cid) is None


@pytest.mark.parametrize(
    "cid", ['"a" <95500>\r\nAction: Hangup', "Renewals <abc>", '"a"b" <1>', "", "95500 x"]
)
def test_anything_else_is_not_a_caller_id(cid: str) -> None:
    assert caller_id_problem(cid) is not None


@pytest.mark.parametrize(
    ("dialer", "field"),
    [
        ({"caller_id": '"续保" <95500>\r\nAction: Originate'}, "caller_id"),
        ({"automatic_caller_id": "Renewals <abc>"}, "automatic_caller_id"),
        ({"reminder_message": "../../etc/passwd"}, "reminder_message"),
    ],
)
def test_settings_refuse_dialplan_values_of_the_wrong_shape(
    dialer: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(dialer=dialer)  # type: ignore[arg-type]
    assert caught.value.errors()[0]["loc"] == ("dialer", field)


def test_settings_from_the_environment_are_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_DIALER__REMINDER_MESSAGE", "custom/renewal-reminder")
    assert Settings().dialer.reminder_message == "custom/renewal-reminder"
    monkeypatch.setenv("CALLCENTER_DIALER__REMINDER_MESSAGE", "custom/reminder.gsm&beep")
    with pytest.raises(ValidationError):
        Settings()


def test_the_seat_technology_follows_the_configured_servers() -> None:
    assert Settings().seat_technologies == ["PJSIP"]
    lab = Settings(ami=[AmiServer(channel_family="local")])
    assert lab.seat_technologies == ["Local"]
