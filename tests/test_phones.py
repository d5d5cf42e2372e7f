"""Phone numbers as exported -> E.164, extension, kind, validity; and which one a lead dials."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.models import Accuracy, PhoneKind, PhoneRole
from crm_sync.phones import (
    PhoneChoice,
    choose_lead_phone,
    parse_phone,
    parse_phone_slow,
    split_numbers,
    usable,
)


@pytest.mark.parametrize(
    "raw",
    ["13812345678", "+86 138 1234 5678", "8613812345678", "138-1234-5678", '="13812345678"'],
)
def test_mobile_numbers_in_any_spelling_become_one_e164(raw: str) -> None:
    p = parse_phone(raw)
    assert (p.e164, p.kind, p.valid, p.extension) == (
        "+8613812345678",
        PhoneKind.MOBILE,
        True,
        None,
    )


@pytest.mark.parametrize(
    "raw", ["0311-85551234", "(0311)85551234", "0311 8555 1234", "031185551234"]
)
def test_landline_with_area_code_is_valid(raw: str) -> None:
    p = parse_phone(raw)
    assert (p.e164, p.kind, p.valid) == ("+8631185551234", PhoneKind.LANDLINE, True)


@pytest.mark.parametrize(
    "raw",
    ["0311-85551234转808", "0311-85551234-808", "0311-85551234 ext. 808", "0311-85551234分机808"],
)
def test_extension_is_kept_apart_from_the_number(raw: str) -> None:
    p = parse_phone(raw)
    assert (p.e164, p.extension, p.valid) == ("+8631185551234", "808", True)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("85551234", "landline without area code"),
        ("138123456", "mobile number with 9 digits"),
        ("11111111111", "no such number range"),
        ("19412345678", "no such number range"),
        ("无", "not a phone number"),
        ("0311-9299", "too short"),
    ],
)
def test_impossible_numbers_are_kept_flagged_with_a_reason(raw: str, reason: str) -> None:
    p = parse_phone(raw)
    assert p.raw == raw
    assert p.valid is False
    assert p.invalid_reason is not None and p.invalid_reason.startswith(reason)


def test_the_mobile_fast_path_agrees_with_a_full_parse() -> None:
    for prefix in range(130, 200):
        for tail in ("00000000", "40512345", "99999999"):
            number = f"{prefix}{tail}"
            assert parse_phone(number) == parse_phone_slow(number), number


def test_a_cell_with_several_numbers_is_split_without_repeats() -> None:
    assert split_numbers(" 13812345678/0311-85551234；13812345678、 ") == [
        "13812345678",
        "0311-85551234",
    ]
    assert split_numbers("") == []


def _c(phone_id: int, role: PhoneRole, valid: bool = True, **kw: object) -> PhoneChoice:
    return PhoneChoice(phone_id, role.value, valid, **kw)  # type: ignore[arg-type]


def test_fleet_policy_prefers_the_insureds_own_number_over_the_fleets() -> None:
    candidates = [_c(1, PhoneRole.FLEET), _c(2, PhoneRole.INSURED)]
    assert choose_lead_phone(candidates, is_fleet=True) == 2


def test_fleet_policy_falls_back_to_the_fleet_number_when_the_insured_has_none() -> None:
    candidates = [_c(1, PhoneRole.FLEET), _c(2, PhoneRole.INSURED, valid=False)]
    assert choose_lead_phone(candidates, is_fleet=True) == 1


def test_private_policy_prefers_the_policyholder() -> None:
    candidates = [_c(2, PhoneRole.INSURED), _c(1, PhoneRole.POLICYHOLDER)]
    assert choose_lead_phone(candidates, is_fleet=False) == 1


def test_corrected_numbers_win_and_wrong_ones_are_never_chosen() -> None:
    candidates = [
        _c(1, PhoneRole.POLICYHOLDER, accuracy=Accuracy.INACCURATE.value),
        _c(2, PhoneRole.INSURED, do_not_call=True),
        _c(3, PhoneRole.CORRECTED),
    ]
    assert choose_lead_phone(candidates, is_fleet=False) == 3
    assert choose_lead_phone(candidates[:2], is_fleet=False) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789+-() 转分机ext#/、x一"), max_size=30))
def test_any_text_parses_without_raising_and_keeps_what_was_written(raw: str) -> None:
    p = parse_phone(raw)
    assert p.raw == raw
    assert p.valid == (p.invalid_reason is None)
    if p.valid:
        assert p.e164 is not None and p.e164.startswith("+")


def test_a_usable_number_is_valid_not_do_not_call_and_not_inaccurate() -> None:
    assert usable(PhoneChoice(1, "policyholder", True))
    assert not usable(PhoneChoice(1, "policyholder", False))
    assert not usable(PhoneChoice(1, "policyholder", True, do_not_call=True))
    assert not usable(PhoneChoice(1, "policyholder", True, Accuracy.INACCURATE.value))
