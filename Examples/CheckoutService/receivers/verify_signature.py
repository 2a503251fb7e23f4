"""Checks a checkout-service webhook delivery's Payment-Sessions-Signature header.

    verify(header, raw_body, secrets) -> bool

`raw_body` is the request body exactly as received (bytes, not re-encoded JSON). Accept the
delivery only when this returns True; a delivery signed more than `tolerance` seconds ago
is refused, so that a captured one cannot be replayed later.

Run as a script, it checks one delivery: verify_signature.py HEADER BODY_FILE SECRET...
and exits 0 when it is valid, 1 when it is not.
"""
import hashlib
import hmac
import sys
import time


def verify(header: str, raw_body: bytes, secrets: list[str], tolerance: int = 300) -> bool:
    fields = [part.strip().split("=", 1) for part in header.split(",")]
    if any(len(field) != 2 for field in fields):
        return False
    timestamps = [value for key, value in fields if key == "t"]
    signatures = [value for key, value in fields if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return False
    if abs(time.time() - int(timestamps[0])) > tolerance:
        return False
    payload = timestamps[0].encode() + b"." + raw_body
    for secret in secrets:
        expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return True
    return False


if __name__ == "__main__":
    with open(sys.argv[2], "rb") as body:
        sys.exit(0 if verify(sys.argv[1], body.read(), sys.argv[3:]) else 1)
