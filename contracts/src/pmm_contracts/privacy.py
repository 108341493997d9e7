"""Privacy guard (DESIGN.md §4): free text that leaves a service may not carry a BSN.

A BSN (burgerservicenummer) is 9 digits (older ones 8, read with a leading zero) that pass
the eleven-test (elfproef): 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 is divisible by 11.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from pmm_contracts.text import MULTI_LINE, SINGLE_LINE

# Runs of 8 or 9 digits, optionally grouped with single spaces, dots or dashes
# ("123456782", "1234.56.782", "123 456 782"), not part of a longer number.
_CANDIDATE = re.compile(r"(?<![\d.\-])\d(?:[ .\-]?\d){7,8}(?![\d])")


def passes_eleven_test(digits: str) -> bool:
    """True when ``digits`` (8 or 9 digits) is a number a BSN could be."""
    if not digits.isdigit() or len(digits) not in (8, 9):
        return False
    digits = digits.zfill(9)
    if int(digits) == 0:
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0


def find_bsn_candidates(text: str) -> list[str]:
    """The digit runs in ``text`` that pass the eleven-test."""
    found = []
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if passes_eleven_test(digits):
            found.append(match.group(0))
    return found


def refuse_bsn(text: str) -> str:
    """Validator: refuse text that contains a number passing the BSN eleven-test."""
    if find_bsn_candidates(text):
        raise ValueError(
            "free text contains a number that passes the BSN eleven-test; "
            "remove personal identifiers before sharing (AVG)"
        )
    return text


FreeText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=10_000),
    MULTI_LINE,
    AfterValidator(refuse_bsn),
]
"""Free text allowed in an event: trimmed, bounded, no control characters but newlines and
tabs, and refused when it holds a BSN."""

ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    SINGLE_LINE,
    AfterValidator(refuse_bsn),
]
"""A short label or reason (1-500 characters, one line, no control characters), with the
same BSN guard."""
