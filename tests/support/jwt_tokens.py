"""Keys generated per test and CDS client JWTs signed with them (and forged ones)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

SIGNING = ["ES384", "RS384", "ES256", "RS256"]
CURVES = {"ES384": "P-384", "ES256": "P-256"}


def new_key(alg: str, kid: str) -> Any:
    """A fresh private key for alg (EC curve by alg, RSA 2048)."""
    if alg.startswith("ES"):
        return ECKey.generate_key(CURVES[alg], parameters={"kid": kid})
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def jwks(*keys: Any) -> dict[str, Any]:
    """The public JWK Set of private keys."""
    return {"keys": [key.as_dict(private=False) for key in keys]}


def claims(iss: str, aud: str | list[str], **changes: Any) -> dict[str, Any]:
    """Valid CDS Hooks client claims, now; a value of None removes the claim."""
    now = int(time.time())
    body = {"iss": iss, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def sign(key: Any, alg: str, body: dict[str, Any], **header: Any) -> str:
    """A compact JWT signed by key; header defaults typ JWT and the key's kid (None drops)."""
    fields = {"alg": alg, "typ": "JWT", "kid": key.kid, **header}
    fields = {name: value for name, value in fields.items() if value is not None}
    # jws, not jwt.encode: that would put back a typ the test left out on purpose
    return jws.serialize_compact(fields, json.dumps(body), key, algorithms=SIGNING)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], body: dict[str, Any], secret: bytes | None) -> str:
    """A token no JOSE library would make: alg none (secret None) or HS256 with any secret."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"
