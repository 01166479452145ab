"""make_proof signs without joserfc: its proofs must still be the compact JWS joserfc reads,
with the same header, for every algorithm."""

from __future__ import annotations

import json

import pytest
from joserfc import jws
from joserfc.jwk import import_key

from webhook_kit.oauth.assertion import ReplayCache
from webhook_kit.oauth.dpop import DPoPKey, make_proof, verify_proof

URL = "https://receiver.example:8443/webhook?x=1"


@pytest.mark.parametrize("algorithm", ["ES256", "PS256", "RS256"])
def test_proofs_are_the_jws_joserfc_verifies(algorithm: str) -> None:
    key = DPoPKey.generate(algorithm)  # type: ignore[arg-type]
    proofs = [
        make_proof(
            key, method="post", url=URL, access_token="a.b.c", nonce="n-1", clock=lambda: 1e9
        )
        for _ in range(2)
    ]
    assert proofs[0].split(".")[0] == proofs[1].split(".")[0]  # one header per key
    for proof in proofs:
        public = import_key(key.public_jwk)
        # An RSA jwk makes a header longer than joserfc's default limit.
        registry = jws.JWSRegistry(algorithms=[algorithm])
        registry.max_header_length = 2048
        verified = jws.deserialize_compact(proof, public, registry=registry)
        assert dict(verified.protected) == {
            "typ": "dpop+jwt",
            "alg": algorithm,
            "jwk": key.public_jwk,
        }
        claims = json.loads(verified.payload)
        assert claims["htm"] == "POST"
        assert claims["htu"] == "https://receiver.example:8443/webhook"
        assert (claims["iat"], claims["nonce"]) == (1000000000, "n-1")
        checked = verify_proof(
            proof,
            method="POST",
            url=URL,
            replay=ReplayCache(),
            access_token="a.b.c",
            jkt=key.thumbprint,
            clock=lambda: 1e9,
        )
        assert checked.jkt == key.thumbprint
    jtis = {
        json.loads(jws.extract_compact(p.encode(), registry=registry).payload)["jti"]
        for p in proofs
    }
    assert len(jtis) == 2


def test_a_proof_signed_by_one_key_does_not_verify_with_another() -> None:
    key, other = DPoPKey.generate(), DPoPKey.generate()
    proof = make_proof(key, method="POST", url=URL)
    forged = f"{other._header_segment.decode()}.{proof.split('.', 1)[1]}"
    with pytest.raises(Exception, match="signature"):
        verify_proof(forged, method="POST", url=URL, replay=ReplayCache())
