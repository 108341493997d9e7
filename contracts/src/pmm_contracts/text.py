"""Text that people type: names and free text without NUL or control characters.

A name or free-text field is refused (pydantic ``value_error``, so an HTTP API answers
422 naming the field) when it holds a control character: NUL, the other C0 and C1 codes,
DEL, or a line or paragraph separator. Ordinary spaces are fine everywhere; a multi-line
field also takes newlines (``\\n``, and ``\\r\\n`` as a browser sends it, kept as ``\\n``)
and tabs. The check runs on the raw input, before surrounding whitespace is stripped, so
a stray control character is refused rather than silently dropped.

Ready-made types::

    class Command(BaseModel):
        name: Name                 # one line, 1..200 characters, stripped
        summary: FreeText          # several lines, 1..4000 characters, stripped

Other lengths compose the same validators::

    Remark = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500),
                       SINGLE_LINE]

(the validator goes after the constraints: it then wraps them and sees the raw input;
placed before them, pydantic drops ``min_length``).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints

_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})  # controls, line and paragraph separators
_MULTI_LINE_ALLOWED = frozenset({"\n", "\t"})

# Documented in JSON Schema / OpenAPI, so clients (and API fuzzers) know the rule.
SINGLE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
MULTI_LINE_PATTERN = r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]*$"


def control_character(text: str, *, multi_line: bool = False) -> tuple[int, str] | None:
    """The position and character of the first refused character in ``text``, if any."""
    for position, char in enumerate(text):
        if multi_line and char in _MULTI_LINE_ALLOWED:
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return position, char
    return None


def _refuse(found: tuple[int, str]) -> ValueError:
    position, char = found
    return ValueError(
        f"contains a control character (U+{ord(char):04X}) at position {position}; "
        "names and texts may not hold control characters"
    )


def single_line(value: Any) -> Any:
    """Refuse control characters in a one-line text (names, codes, short labels)."""
    if isinstance(value, str) and (found := control_character(value)) is not None:
        raise _refuse(found)
    return value


def multi_line(value: Any) -> Any:
    """Refuse control characters in a multi-line text; newlines and tabs are allowed and
    ``\\r\\n`` becomes ``\\n``."""
    if isinstance(value, str):
        value = value.replace("\r\n", "\n")
        if (found := control_character(value, multi_line=True)) is not None:
            raise _refuse(found)
    return value


SINGLE_LINE = BeforeValidator(single_line)
MULTI_LINE = BeforeValidator(multi_line)

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    SINGLE_LINE,
    Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN}),
]
"""A name or other one-line text: 1..200 characters, no control characters."""

FreeText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    MULTI_LINE,
    Field(json_schema_extra={"pattern": MULTI_LINE_PATTERN}),
]
"""Free text of several lines: 1..4000 characters; newlines and tabs allowed, no other
control characters."""

__all__ = [
    "MULTI_LINE",
    "MULTI_LINE_PATTERN",
    "SINGLE_LINE",
    "SINGLE_LINE_PATTERN",
    "FreeText",
    "Name",
    "control_character",
    "multi_line",
    "single_line",
]
