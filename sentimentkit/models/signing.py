"""Optional authenticity for model cards: an HMAC-SHA256, by a secret key, over the card and its files.

The SHA-256s in a card only show that the files are the ones the card describes (corruption); anyone
who can write the model folder can rewrite both. With a key configured (SENTIMENTKIT_SIGNING_KEY or
SENTIMENTKIT_SIGNING_KEY_FILE), training signs each card it writes, `sentimentkit sign` signs an
existing model, and loading refuses any model whose signature is missing or wrong, before a model file
is unpickled or opened. The key must be kept outside the model folder: whoever holds it can sign.

Signed message: a version tag, the card as canonical JSON (sorted keys, no whitespace, without the
`signature` field), and the canonical JSON of {file name: SHA-256 of the file's bytes as read now}.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from sentimentkit.config import Settings
from sentimentkit.errors import ConfigError

SIGNATURE_FIELD = "signature"
ALGORITHM = "HMAC-SHA256"
MIN_KEY_BYTES = 16
_MESSAGE_TAG = b"sentimentkit-model-signature-v1\n"
KEY_HINT = 'e.g. python -c "import secrets; print(secrets.token_hex(32))"'


def load_key(settings: Settings) -> bytes | None:
    """The configured signing key, or None when neither setting is given. ValueError (one line) when
    both are given, the key file cannot be read, or the key is shorter than MIN_KEY_BYTES."""
    if settings.signing_key and settings.signing_key_file:
        raise ConfigError("set SENTIMENTKIT_SIGNING_KEY or SENTIMENTKIT_SIGNING_KEY_FILE, not both")
    if settings.signing_key_file:
        try:
            key = settings.signing_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"SENTIMENTKIT_SIGNING_KEY_FILE {settings.signing_key_file} cannot be read ({exc.strerror})"
            ) from None
        source = "SENTIMENTKIT_SIGNING_KEY_FILE"
    elif settings.signing_key:
        key, source = settings.signing_key.strip().encode("utf-8"), "SENTIMENTKIT_SIGNING_KEY"
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{source} holds {len(key)} bytes; use at least {MIN_KEY_BYTES} random ones ({KEY_HINT})"
        )
    return key


def key_id(key: bytes) -> str:
    """A short public name for a key (derived with HMAC, so it says nothing more than a signature does)."""
    return hmac.new(key, b"sentimentkit key id", hashlib.sha256).hexdigest()[:16]


def _message(card: Mapping[str, Any], hashes: Mapping[str, str]) -> bytes:
    body = {k: v for k, v in card.items() if k != SIGNATURE_FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    files = json.dumps(dict(hashes), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _MESSAGE_TAG + canonical.encode("ascii") + b"\n" + files.encode("ascii")


def sign(card: Mapping[str, Any], hashes: Mapping[str, str], key: bytes) -> dict[str, str]:
    """The `signature` field for `card` whose artifact files have SHA-256s `hashes`."""
    value = hmac.new(key, _message(card, hashes), hashlib.sha256).hexdigest()
    return {"algorithm": ALGORITHM, "key_id": key_id(key), "value": value}


def check(card: Mapping[str, Any], hashes: Mapping[str, str], key: bytes) -> str | None:
    """None when `card` carries a valid signature by `key` over itself and `hashes`; else why not."""
    found = card.get(SIGNATURE_FIELD)
    if found is None:
        return (
            "a signing key is configured but the model is not signed (sign it, if you trust it, with "
            "`python -m sentimentkit sign --model PATH`)"
        )
    if (
        not isinstance(found, dict)
        or found.get("algorithm") != ALGORITHM
        or not isinstance(found.get("value"), str)
    ):
        return f"its card's signature is malformed (expected an {ALGORITHM} signature)"
    if found.get("key_id") != key_id(key):
        return f"it was signed with a different key (key id {found.get('key_id')}, the configured key is {key_id(key)})"
    if not hmac.compare_digest(found["value"], sign(card, hashes, key)["value"]):
        return "its signature does not match: the card or a model file was changed after it was signed"
    return None
