"""Passwords, session tokens, request signatures and the timestamp window of services.gateway."""

from __future__ import annotations

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.security import (
    CLOCK_SKEW_MS,
    MAX_RECV_WINDOW_MS,
    TOKEN_AUDIENCE,
    BadRecvWindow,
    InvalidToken,
    StaleRequest,
    TokenIssuer,
    check_timestamp,
    hash_password,
    needs_rehash,
    sign,
    signature_ok,
    verify_password,
)

SECRET = "s" * 32
OTHER_SECRET = "o" * 32
T0 = 1_700_000_000


class Clock:
    """A settable clock for the token issuer."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- passwords --------------------------------------------------------------------------------


def test_a_password_verifies_against_its_own_hash() -> None:
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse battery staple")
    assert not needs_rehash(hashed)


def test_a_wrong_password_does_not_verify() -> None:
    assert not verify_password(hash_password("right"), "wrong")


@pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$m=1$x$y", "é" * 10])
def test_a_malformed_hash_verifies_nothing_and_needs_rehash(garbage: str) -> None:
    assert not verify_password(garbage, "anything")
    assert needs_rehash(garbage)


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("same") != hash_password("same")


# --- session tokens ---------------------------------------------------------------------------


def test_a_token_carries_the_user_id_back() -> None:
    issuer = TokenIssuer(SECRET, 60, clock=Clock(T0))
    assert issuer.verify(issuer.issue(42)) == 42


def test_a_token_expires_exactly_at_its_ttl() -> None:
    clock = Clock(T0)
    issuer = TokenIssuer(SECRET, 60, clock=clock)
    token = issuer.issue(7)
    clock.now = T0 + 59.999
    assert issuer.verify(token) == 7
    clock.now = T0 + 60
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify(token)


def test_a_tampered_token_is_refused() -> None:
    issuer = TokenIssuer(SECRET, 60, clock=Clock(T0))
    header, _, signature = issuer.issue(7).split(".")
    forged_payload = jwt.encode(
        {"sub": "8", "iat": T0, "exp": T0 + 60, "aud": TOKEN_AUDIENCE}, SECRET
    ).split(".")[1]
    with pytest.raises(InvalidToken, match="signature"):
        issuer.verify(f"{header}.{forged_payload}.{signature}")


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = TokenIssuer(OTHER_SECRET, 60, clock=Clock(T0)).issue(7)
    with pytest.raises(InvalidToken, match="signature"):
        TokenIssuer(SECRET, 60, clock=Clock(T0)).verify(token)


def test_a_jwt_for_another_audience_is_refused_even_with_the_same_secret() -> None:
    claims = {"sub": "7", "iat": T0, "exp": T0 + 60, "aud": "some-other-service"}
    with pytest.raises(InvalidToken, match="not a session token"):
        TokenIssuer(SECRET, 60, clock=Clock(T0)).verify(jwt.encode(claims, SECRET))


def test_a_jwt_without_an_audience_is_refused_even_with_the_same_secret() -> None:
    claims = {"sub": "7", "iat": T0, "exp": T0 + 60}
    with pytest.raises(InvalidToken, match="'aud'"):
        TokenIssuer(SECRET, 60, clock=Clock(T0)).verify(jwt.encode(claims, SECRET))


@pytest.mark.parametrize("sub", ["0", "-3", "07", "abc", "", "1.5"])
def test_a_token_whose_subject_is_not_a_user_id_is_refused(sub: str) -> None:
    issuer = TokenIssuer(SECRET, 60, clock=Clock(T0))
    claims = {"sub": sub, "iat": T0, "exp": T0 + 60, "aud": TOKEN_AUDIENCE}
    with pytest.raises(InvalidToken):
        issuer.verify(jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_a_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        TokenIssuer(SECRET, 60, clock=Clock(T0)).verify(token)


def test_an_unsigned_token_is_refused() -> None:
    claims = {"sub": "7", "iat": T0, "exp": T0 + 60, "aud": TOKEN_AUDIENCE}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidToken):
        TokenIssuer(SECRET, 60, clock=Clock(T0)).verify(token)


def counting_decode(monkeypatch) -> list[str]:
    """Count PyJWT's full checks (signature included) from here on."""
    calls: list[str] = []
    decode = jwt.decode

    def counted(token, *args, **kwargs):
        calls.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    return calls


def test_a_verified_token_is_not_checked_again(monkeypatch) -> None:
    issuer = TokenIssuer(SECRET, 60, clock=Clock(T0))
    token = issuer.issue(7)
    calls = counting_decode(monkeypatch)
    assert [issuer.verify(token) for _ in range(5)] == [7] * 5
    assert calls == [token]


def test_a_remembered_token_still_expires_and_stays_expired(monkeypatch) -> None:
    clock = Clock(T0)
    issuer = TokenIssuer(SECRET, 60, clock=clock)
    token = issuer.issue(7)
    assert issuer.verify(token) == 7
    clock.now = T0 + 60
    for _ in range(2):  # the second time from the full check: the token was forgotten
        with pytest.raises(InvalidToken, match="expired"):
            issuer.verify(token)


def test_a_refused_token_is_checked_in_full_every_time(monkeypatch) -> None:
    token = TokenIssuer(OTHER_SECRET, 60, clock=Clock(T0)).issue(7)
    issuer = TokenIssuer(SECRET, 60, clock=Clock(T0))
    calls = counting_decode(monkeypatch)
    for _ in range(3):
        with pytest.raises(InvalidToken, match="signature"):
            issuer.verify(token)
    assert len(calls) == 3


def test_the_remembered_tokens_are_bounded_oldest_forgotten_first(monkeypatch) -> None:
    issuer = TokenIssuer(SECRET, 60, clock=Clock(T0), remembered=2)
    first, second, third = (issuer.issue(n) for n in (1, 2, 3))
    for token in (first, second, third):
        issuer.verify(token)
    calls = counting_decode(monkeypatch)
    assert (issuer.verify(third), issuer.verify(second), issuer.verify(first)) == (3, 2, 1)
    assert calls == [first]


@given(
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 130), st.booleans()), min_size=1, max_size=40
    ),
    remembered=st.integers(0, 3),
)
def test_remembering_never_changes_an_answer(steps, remembered) -> None:
    """Tokens of four users issued at different times, some tampered, verified as the clock
    moves forward: an issuer that remembers answers exactly as one that checks in full."""
    clock = Clock(T0)
    remembering = TokenIssuer(SECRET, 60, clock=clock, remembered=remembered)
    full = TokenIssuer(SECRET, 60, clock=clock, remembered=0)
    tokens = [TokenIssuer(SECRET, 60, clock=Clock(T0 + 20 * n)).issue(n + 1) for n in range(4)]

    def answer(issuer: TokenIssuer, token: str):
        try:
            return issuer.verify(token)
        except InvalidToken as error:
            return str(error)

    for which, advance, tampered in steps:
        clock.now = min(clock.now + advance, T0 + 200)
        token = tokens[which] + ("x" if tampered else "")
        assert answer(remembering, token) == answer(full, token)


def test_a_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="31 bytes"):
        TokenIssuer("x" * 31, 60)
    TokenIssuer("x" * 32, 60)


def test_a_non_positive_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        TokenIssuer(SECRET, 0)


# --- request signatures -----------------------------------------------------------------------

# Binance's documented examples (API docs, "SIGNED endpoint examples for POST /api/v3/order").
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
BINANCE_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    "&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)


def test_the_signature_matches_binances_query_string_example() -> None:
    assert (
        sign(BINANCE_SECRET, BINANCE_QUERY)
        == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_query_and_body_are_signed_concatenated_without_a_separator() -> None:
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    signature = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    assert signature_ok(BINANCE_SECRET, query + body, signature)
    assert not signature_ok(BINANCE_SECRET, f"{query}&{body}", signature)


def test_a_signature_is_accepted_in_upper_case_hex() -> None:
    signature = sign(BINANCE_SECRET, BINANCE_QUERY).upper()
    assert signature_ok(BINANCE_SECRET, BINANCE_QUERY, signature)


@pytest.mark.parametrize("signature", ["", "zz" * 32, "ab" * 31, "ab" * 33, "é" * 64, " " * 64])
def test_a_signature_that_is_not_64_hex_digits_is_refused(signature: str) -> None:
    assert not signature_ok(BINANCE_SECRET, BINANCE_QUERY, signature)


@given(secret=st.text(min_size=1), payload=st.text())
def test_any_payload_verifies_against_its_own_signature(secret: str, payload: str) -> None:
    assert signature_ok(secret, payload, sign(secret, payload))


@given(secret=st.text(min_size=1), payload=st.text(), other=st.text())
def test_any_change_to_the_payload_breaks_the_signature(
    secret: str, payload: str, other: str
) -> None:
    if other != payload:
        assert not signature_ok(secret, other, sign(secret, payload))


@given(secret=st.text(min_size=1), other=st.text(min_size=1), payload=st.text())
def test_a_signature_made_with_another_secret_is_refused(
    secret: str, other: str, payload: str
) -> None:
    if other != secret:
        assert not signature_ok(other, payload, sign(secret, payload))


# --- timestamps -------------------------------------------------------------------------------

NOW = 1_700_000_000_000


def test_a_timestamp_exactly_recv_window_old_is_accepted_and_one_ms_more_is_not() -> None:
    check_timestamp(NOW - 5_000, 5_000, NOW)
    with pytest.raises(StaleRequest, match="5001 ms old"):
        check_timestamp(NOW - 5_001, 5_000, NOW)


def test_a_timestamp_up_to_the_clock_skew_ahead_is_accepted_and_beyond_it_is_not() -> None:
    check_timestamp(NOW + CLOCK_SKEW_MS, 5_000, NOW)
    with pytest.raises(StaleRequest, match="ahead"):
        check_timestamp(NOW + CLOCK_SKEW_MS + 1, 5_000, NOW)


@pytest.mark.parametrize("window", [0, -1, MAX_RECV_WINDOW_MS + 1])
def test_a_recv_window_outside_1_to_60000_ms_is_refused(window: int) -> None:
    with pytest.raises(BadRecvWindow, match="recvWindow"):
        check_timestamp(NOW, window, NOW)


@pytest.mark.parametrize("window", [1, MAX_RECV_WINDOW_MS])
def test_the_recv_window_bounds_themselves_are_allowed(window: int) -> None:
    check_timestamp(NOW - window, window, NOW)
