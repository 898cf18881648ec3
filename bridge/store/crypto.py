"""Secrets at rest: each workspace's bot token and Letta key are stored encrypted with BRIDGE_ENCRYPTION_KEY.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`): a value that was tampered with, or written with
another key, does not decrypt, and the bridge says so instead of using it. Several keys separated by commas
rotate the key: the first encrypts, every one decrypts.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

GENERATE = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class CipherError(Exception):
    """The key is unusable, or a stored value does not decrypt with it; the message says which, in plain words."""


class Cipher:
    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise CipherError(f"BRIDGE_ENCRYPTION_KEY is empty; make one with {GENERATE}")
        try:
            self._fernet = MultiFernet([Fernet(part.encode()) for part in parts])
        except (ValueError, TypeError):
            raise CipherError(
                "BRIDGE_ENCRYPTION_KEY is not a Fernet key (32 bytes in URL-safe base64, 44 characters); "
                f"make one with {GENERATE}"
            ) from None

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CipherError(
                "a stored secret does not decrypt with BRIDGE_ENCRYPTION_KEY: the key changed (keep the old one "
                "after the new one, separated by a comma, until every workspace is reinstalled), or the row was altered"
            ) from None
