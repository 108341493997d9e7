"""DESIGN.md §4 (AVG): no BSN in free text that leaves a service."""

import pytest
from pydantic import ValidationError

from pmm_contracts.events.cases import EscalationRequested
from pmm_contracts.privacy import find_bsn_candidates, passes_eleven_test


@pytest.mark.parametrize("number", ["111222333", "123456782", "12345672"])
def test_numbers_passing_the_eleven_test_are_bsn_candidates(number: str) -> None:
    assert passes_eleven_test(number)


@pytest.mark.parametrize("number", ["123456789", "000000000", "12345", "1234567890"])
def test_other_numbers_are_not(number: str) -> None:
    assert not passes_eleven_test(number)


@pytest.mark.parametrize(
    "text",
    ["client 111222333 needs help", "bsn: 1234.56.782", "nummer 123 456 782.", "111-222-333"],
)
def test_bsn_is_found_in_free_text_in_its_usual_notations(text: str) -> None:
    assert find_bsn_candidates(text)


@pytest.mark.parametrize(
    "text",
    [
        "IBAN NL91ABNA0417164300",
        "phone 0612345678",
        "amount 123456789 euro",
        "case LMM-2026-0042",
        "zip 1234 AB, 2 adults, 3 children",
    ],
)
def test_ordinary_numbers_pass(text: str) -> None:
    assert not find_bsn_candidates(text)


def test_an_event_with_a_bsn_in_free_text_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        EscalationRequested(
            case_id="c",
            case_number="LMM-2026-0001",
            request_id="r",
            organisations_involved=("uwv",),
            justification="see 111222333",
            question="who pays?",
            requested_by="p-1",
        )
    errors = caught.value.errors()
    assert errors[0]["loc"] == ("justification",)
    assert "BSN eleven-test" in errors[0]["msg"]


def test_free_and_short_texts_refuse_control_characters() -> None:
    from pydantic import TypeAdapter, ValidationError

    from pmm_contracts.privacy import FreeText, ShortText

    free: TypeAdapter[str] = TypeAdapter(FreeText)
    short: TypeAdapter[str] = TypeAdapter(ShortText)
    assert free.validate_python("line one\nline\ttwo") == "line one\nline\ttwo"
    for bad in ("a\x00b", "bell\x07", "esc\x1b[31m"):
        with pytest.raises(ValidationError):
            free.validate_python(bad)
        with pytest.raises(ValidationError):
            short.validate_python(bad)
    with pytest.raises(ValidationError):
        short.validate_python("two\nlines")
