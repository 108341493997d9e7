"""The session cookie: sealed, tamper-evident, expiring; CSRF per session."""

from __future__ import annotations

import time

from pmm_console.session import Session, SessionCodec


def test_a_sealed_session_opens_with_its_token_and_csrf() -> None:
    codec = SessionCodec("a-secret-of-sufficient-length")
    session = Session()
    session.sign_in("header.payload.signature", hours=1)
    opened = codec.open(codec.seal(session))
    assert opened is not None
    assert opened.token == "header.payload.signature"
    assert opened.csrf == session.csrf
    assert not opened.changed


def test_a_changed_or_foreign_cookie_opens_nothing() -> None:
    codec = SessionCodec("a-secret-of-sufficient-length")
    session = Session()
    session.sign_in("t", hours=1)
    value = codec.seal(session)
    payload, mac = value.split(".")
    assert codec.open(payload[:-2] + "xx." + mac) is None
    assert codec.open(value + "x") is None
    assert SessionCodec("another-secret-entirely-different").open(value) is None
    assert codec.open("") is None
    assert codec.open("no-dot") is None


def test_an_expired_sign_in_is_a_signed_out_session_with_the_same_csrf() -> None:
    codec = SessionCodec("a-secret-of-sufficient-length")
    session = Session()
    session.sign_in("t", hours=1)
    opened = codec.open(codec.seal(session), now=time.time() + 3601)
    assert opened is not None
    assert opened.token is None
    assert opened.csrf == session.csrf
    assert opened.changed  # the cookie is rewritten without the token


def test_csrf_is_checked_in_constant_time_and_renewed_at_sign_in_and_out() -> None:
    session = Session()
    before = session.csrf
    assert session.csrf_ok(before)
    assert not session.csrf_ok(None)
    assert not session.csrf_ok("")
    assert not session.csrf_ok(before + "x")
    session.sign_in("t", hours=1)
    assert session.csrf != before  # no fixation of a token seen before sign-in
    signed_in = session.csrf
    session.sign_out()
    assert session.token is None
    assert session.csrf != signed_in


def test_a_flash_message_is_shown_once() -> None:
    codec = SessionCodec("a-secret-of-sufficient-length")
    session = Session()
    session.say("Casus ingediend")
    opened = codec.open(codec.seal(session))
    assert opened is not None
    assert opened.take_flash() == "Casus ingediend"
    assert opened.take_flash() is None
    again = codec.open(codec.seal(opened))
    assert again is not None
    assert again.flash is None


def test_the_organisation_name_for_the_header_lives_as_long_as_the_sign_in() -> None:
    codec = SessionCodec("a-secret-of-sufficient-length")
    session = Session()
    session.sign_in("t", hours=1, organisation_name="Gemeente Amsterdam")
    opened = codec.open(codec.seal(session))
    assert opened is not None
    assert opened.organisation_name == "Gemeente Amsterdam"
    expired = codec.open(codec.seal(session), now=time.time() + 3601)
    assert expired is not None
    assert expired.organisation_name is None
    session.sign_out()
    assert session.organisation_name is None
    assert codec.open(codec.seal(session)).organisation_name is None  # type: ignore[union-attr]
