"""Names and free text refuse NUL and control characters, naming the field."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from pydantic import BaseModel, StringConstraints, ValidationError

from pmm_contracts.text import (
    MULTI_LINE_PATTERN,
    SINGLE_LINE,
    SINGLE_LINE_PATTERN,
    FreeText,
    Name,
)

Remark = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10), SINGLE_LINE]


class Form(BaseModel):
    name: Name
    text: FreeText | None = None
    remark: Remark | None = None


REFUSED_EVERYWHERE = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\x85", "\x9f", "\u2028"]


@pytest.mark.parametrize("char", [*REFUSED_EVERYWHERE, "\n", "\t", "\r", "\x0b", "\x0c"])
def test_a_name_with_a_control_character_is_refused_naming_the_field(char: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Form(name=f"Anna{char}de Vries")
    (error,) = raised.value.errors()
    assert error["loc"] == ("name",)
    assert error["type"] == "value_error"
    assert f"U+{ord(char):04X}" in error["msg"]


@pytest.mark.parametrize("char", ["\x00", "\t", "\n"])
def test_a_control_character_at_the_edge_is_refused_not_stripped(char: str) -> None:
    with pytest.raises(ValidationError):
        Form(name=f"Anna{char}")


@pytest.mark.parametrize("char", [*REFUSED_EVERYWHERE, "\r", "\x0b"])
def test_free_text_refuses_control_characters_too(char: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Form(name="ok", text=f"line one{char}line two")
    assert raised.value.errors()[0]["loc"] == ("text",)


def test_free_text_keeps_newlines_and_tabs_and_takes_a_browsers_crlf() -> None:
    form = Form(name="ok", text="  first line\r\n\tsecond line\nthird  ")
    assert form.text == "first line\n\tsecond line\nthird"


def test_ordinary_text_passes_and_is_stripped() -> None:
    form = Form(name="  Anna de Vries-Ørsted (UWV) ", remark=" kort ")
    assert form.name == "Anna de Vries-Ørsted (UWV)"
    assert form.remark == "kort"
    assert Form(name="Zoë 😀 van \u2019t Hof").name == "Zoë 😀 van \u2019t Hof"


def test_lengths_still_apply() -> None:
    with pytest.raises(ValidationError):
        Form(name="   ")
    with pytest.raises(ValidationError):
        Form(name="x" * 201)
    with pytest.raises(ValidationError) as raised:
        Form(name="ok", remark="x\x00")
    assert raised.value.errors()[0]["loc"] == ("remark",)


def test_the_json_schema_documents_the_rule_and_matches_the_validator() -> None:
    schema = Form.model_json_schema()["properties"]
    assert schema["name"]["pattern"] == SINGLE_LINE_PATTERN
    assert schema["name"]["maxLength"] == 200
    single, multi = re.compile(SINGLE_LINE_PATTERN), re.compile(MULTI_LINE_PATTERN)
    for char in REFUSED_EVERYWHERE:
        assert not single.match(f"a{char}b")
        assert not multi.match(f"a{char}b")
    assert single.match("Anna de Vries")
    assert not single.match("a\nb")
    assert multi.match("a\n\tb")
