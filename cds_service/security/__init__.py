"""Authentication of CDS clients: signed JWT bearer tokens (CDS Hooks 2.0, Security).

issuers.py reads the trusted-issuers file, jwks.py fetches and caches the issuers' public keys,
replay.py remembers the `jti` of accepted tokens in the database, tokens.py checks one token and
middleware.py applies all of it to every CDS Hooks call.
"""

from cds_service.security.middleware import init_auth

__all__ = ["init_auth"]
