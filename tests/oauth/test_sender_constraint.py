"""The pure checks of bound tokens at a protected route, and their 401 challenges."""

from __future__ import annotations

from typing import Any

import pytest

from webhook_kit.errors import TokenError
from webhook_kit.oauth.dpop import DPoPKey, NonceSource, make_proof
from webhook_kit.oauth.verifier import SenderConstraint, access_token

URL = "https://receiver.example/webhook"
TOKEN = "header.claims.signature"


def test_access_token_schemes() -> None:
    assert access_token("Bearer abc") == ("Bearer", "abc")
    assert access_token("DPoP abc") == ("DPoP", "abc")
    assert access_token("dpop abc") == ("DPoP", "abc")
    for bad in ("DPoP ", "Basic abc", "DPoP a b"):
        with pytest.raises(TokenError):
            access_token(bad)
    with pytest.raises(TokenError, match="query string"):
        access_token("DPoP abc", b"access_token=abc")


def check(constraint: SenderConstraint, scheme: Any, claims: dict[str, Any], **kwargs: Any) -> None:
    options: dict[str, Any] = {"method": "POST", "url": URL}
    options.update(kwargs)
    constraint.check(scheme, TOKEN, claims, **options)


def test_unbound_tokens_pass_where_no_binding_is_required() -> None:
    check(SenderConstraint(), "Bearer", {})
    check(SenderConstraint(), "Bearer", {"cnf": "junk"})  # a non-object cnf binds nothing


def test_dpop_bound() -> None:
    key = DPoPKey.generate()
    claims = {"cnf": {"jkt": key.thumbprint}}
    constraint = SenderConstraint("dpop")
    proof = make_proof(key, method="POST", url=URL, access_token=TOKEN)
    check(constraint, "DPoP", claims, proofs=[proof])
    with pytest.raises(TokenError, match="replayed") as caught:
        check(constraint, "DPoP", claims, proofs=[proof])
    assert caught.value.error == "invalid_dpop_proof"
    with pytest.raises(TokenError, match="must be sent as Authorization: DPoP") as caught:
        check(constraint, "Bearer", claims, proofs=[proof])
    assert caught.value.error == "invalid_token"
    with pytest.raises(TokenError, match="proof missing"):
        check(constraint, "DPoP", claims)
    with pytest.raises(TokenError, match="more than one"):
        check(constraint, "DPoP", claims, proofs=[proof, proof])
    with pytest.raises(TokenError, match="not DPoP-bound"):
        check(constraint, "DPoP", {})
    with pytest.raises(TokenError, match="requires a DPoP-bound token"):
        check(constraint, "Bearer", {})


def test_certificate_bound() -> None:
    constraint = SenderConstraint("mtls")
    claims = {"cnf": {"x5t#S256": "thumb"}}
    check(constraint, "Bearer", claims, peer_thumbprint="thumb")
    with pytest.raises(TokenError, match="without a client certificate"):
        check(constraint, "Bearer", claims)
    with pytest.raises(TokenError, match="another certificate"):
        check(constraint, "Bearer", claims, peer_thumbprint="other")
    with pytest.raises(TokenError, match="requires a certificate-bound token"):
        check(constraint, "Bearer", {}, peer_thumbprint="thumb")
    # Without a required binding, a bound token is still checked.
    with pytest.raises(TokenError, match="without a client certificate"):
        check(SenderConstraint(), "Bearer", claims)


def test_challenges() -> None:
    bearer = SenderConstraint()
    missing = TokenError("missing token", None)
    assert bearer.challenge(missing, None) == {"WWW-Authenticate": 'Bearer realm="webhook-kit"'}
    invalid = TokenError('bad "quoted" thing')
    header = bearer.challenge(invalid, "Bearer")["WWW-Authenticate"]
    assert header.startswith('Bearer realm="webhook-kit", error="invalid_token"')
    assert "'quoted'" in header
    # A DPoP error, or a DPoP request, gets a DPoP challenge even where no binding is required.
    proof_error = TokenError("htu does not match", "invalid_dpop_proof")
    assert bearer.challenge(proof_error, "DPoP")["WWW-Authenticate"].startswith("DPoP ")
    dpop_route = SenderConstraint("dpop", nonces=NonceSource())
    headers = dpop_route.challenge(missing, None)
    assert headers["WWW-Authenticate"] == 'DPoP realm="webhook-kit", algs="ES256 PS256 RS256"'
    assert headers["DPoP-Nonce"]
    with pytest.raises(ValueError):
        SenderConstraint("both")  # type: ignore[arg-type]


def test_a_full_proof_replay_cache_is_busy_not_a_bad_proof() -> None:
    from webhook_kit.oauth.assertion import ReplayCache

    key = DPoPKey.generate()
    claims = {"cnf": {"jkt": key.thumbprint}}
    constraint = SenderConstraint("dpop", replay=ReplayCache(1))
    check(
        constraint,
        "DPoP",
        claims,
        proofs=[make_proof(key, method="POST", url=URL, access_token=TOKEN)],
    )
    with pytest.raises(TokenError, match="retry shortly") as caught:
        proof = make_proof(key, method="POST", url=URL, access_token=TOKEN)
        check(constraint, "DPoP", claims, proofs=[proof])
    assert caught.value.error == "temporarily_unavailable"


def test_the_remembered_route_htu_still_refuses_a_proof_for_another_url() -> None:
    """The route's htu is worked out once and remembered; proofs are still held to it."""
    key = DPoPKey.generate()
    claims = {"cnf": {"jkt": key.thumbprint}}
    constraint = SenderConstraint("dpop")
    for _ in range(3):
        proof = make_proof(key, method="POST", url=URL, access_token=TOKEN)
        check(constraint, "DPoP", claims, proofs=[proof], url=URL + "?n=1")
    assert constraint.routes.htu(URL + "?n=1") == (URL, True)
    other = make_proof(key, method="POST", url=URL + "/x", access_token=TOKEN)
    with pytest.raises(TokenError, match="htu does not match") as caught:
        check(constraint, "DPoP", claims, proofs=[other], url=URL + "?n=1")
    assert caught.value.error == "invalid_dpop_proof"
    host = make_proof(key, method="POST", url="https://other.example/webhook", access_token=TOKEN)
    with pytest.raises(TokenError, match="htu does not match"):
        check(constraint, "DPoP", claims, proofs=[host])
