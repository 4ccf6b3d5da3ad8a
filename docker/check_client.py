"""The CDS client of docker/check.sh: a test issuer's ES384 key and a signed hook call.

`issuer DIR` writes DIR/issuers.yaml (the issuer with its public key inline) and DIR/key.json
(its private key, for `call`); `call URL AUD_BASE DIR` signs a token as that issuer for
AUD_BASE + the order-select path, posts the shipped sample request to URL + that path, wants a
200 with cards, then sends the same token again and wants a 401 (the jti store works).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests
import yaml
from joserfc.jwk import ECKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hook_requests import SELECT, sample_request  # noqa: E402
from tests.support.jwt_tokens import claims, jwks, new_key, sign  # noqa: E402

ISSUER = "https://ehr.check.test"
KID = "check-es384-1"


def make_issuer(directory: Path) -> None:
    """Write the trusted-issuers file and the issuer's private key into directory."""
    key = new_key("ES384", KID)
    issuers = {ISSUER: {"jwks": jwks(key)}}
    (directory / "issuers.yaml").write_text(yaml.safe_dump(issuers), encoding="utf-8")
    (directory / "key.json").write_text(json.dumps(key.as_dict(private=True)), encoding="utf-8")


def call(url: str, aud_base: str, directory: Path) -> int:
    """One signed order-select call (200 with cards wanted), then its replay (401 wanted)."""
    key = ECKey.import_key(json.loads((directory / "key.json").read_text(encoding="utf-8")))
    token = sign(key, "ES384", claims(ISSUER, aud_base + SELECT))
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
    answer = requests.post(url + SELECT, json=sample_request(), headers=headers, timeout=30)
    cards = answer.json().get("cards", []) if answer.status_code == 200 else []
    print(f"signed hook call: HTTP {answer.status_code}, {len(cards)} card(s)")
    if answer.status_code != 200 or not cards:
        print(answer.text[:2000], file=sys.stderr)
        return 1
    print(f"  first card: {cards[0]['indicator']}: {cards[0]['summary']}")
    replay = requests.post(url + SELECT, json=sample_request(), headers=headers, timeout=30)
    print(f"same token again: HTTP {replay.status_code}")
    return 0 if replay.status_code == 401 else 1


def main(argv: list[str]) -> int:
    """`issuer DIR` or `call URL AUD_BASE DIR`."""
    if len(argv) == 2 and argv[0] == "issuer":
        make_issuer(Path(argv[1]))
        return 0
    if len(argv) == 4 and argv[0] == "call":
        return call(argv[1], argv[2].rstrip("/"), Path(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
