#!/usr/bin/env python3
"""OwnTracks payload encryption done with PyNaCl (libsodium), independently of mytracks.

Run by crates/owntracks/tests/crypto_interop.rs to check that what the Rust crate encrypts,
libsodium opens, and the other way round; usable by hand to make or read test payloads:

    python3 tests/python/owntracks_crypto.py key PASSPHRASE
        hex of the 32-byte key the apps derive: the passphrase's UTF-8 bytes, truncated or
        zero-padded to 32 (no KDF)
    python3 tests/python/owntracks_crypto.py encrypt KEYHEX PLAINTEXT
        base64 of a random 24-byte nonce followed by crypto_secretbox(PLAINTEXT), one line
    python3 tests/python/owntracks_crypto.py decrypt KEYHEX DATA_B64
        the plaintext, written as raw bytes with no newline added

Arguments are taken as the exact bytes given (os.fsencode), so non-ASCII text round-trips.
Exit status 0 on success, 1 when decryption fails (wrong key, tampered data), 2 for usage
errors or when PyNaCl is missing (`.ci/run` installs it: python3 -m pip install pynacl).
"""

from __future__ import annotations

import base64
import binascii
import os
import sys

try:
    import nacl.exceptions
    import nacl.secret
    import nacl.utils
except ImportError as err:  # pragma: no cover - environment problem, reported clearly
    print(
        f"FAIL: PyNaCl is not importable by {sys.executable} ({err}); "
        "install it with: python3 -m pip install pynacl (see .ci/run)",
        file=sys.stderr,
    )
    sys.exit(2)

KEY_LEN = nacl.secret.SecretBox.KEY_SIZE  # 32
NONCE_LEN = nacl.secret.SecretBox.NONCE_SIZE  # 24


def key_from_passphrase(passphrase: bytes) -> bytes:
    return passphrase[:KEY_LEN].ljust(KEY_LEN, b"\0")


def parse_key(text: str) -> bytes:
    try:
        key = binascii.unhexlify(text)
    except binascii.Error as err:
        usage(f"KEYHEX is not hex: {err}")
    if len(key) != KEY_LEN:
        usage(f"KEYHEX must be {KEY_LEN} bytes, got {len(key)}")
    return key


def encrypt(key: bytes, plain: bytes) -> str:
    nonce = nacl.utils.random(NONCE_LEN)
    # PyNaCl's combined form is nonce || tag || ciphertext, the layout the apps use.
    sealed = nacl.secret.SecretBox(key).encrypt(plain, nonce)
    return base64.b64encode(bytes(sealed)).decode("ascii")


def decrypt(key: bytes, data: str) -> bytes:
    raw = base64.b64decode(data, validate=True)
    return nacl.secret.SecretBox(key).decrypt(raw)


def usage(problem: str) -> None:
    print(f"usage error: {problem}", file=sys.stderr)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "key":
        print(key_from_passphrase(os.fsencode(argv[1])).hex())
        return 0
    if len(argv) == 3 and argv[0] == "encrypt":
        print(encrypt(parse_key(argv[1]), os.fsencode(argv[2])))
        return 0
    if len(argv) == 3 and argv[0] == "decrypt":
        try:
            plain = decrypt(parse_key(argv[1]), argv[2])
        except (binascii.Error, ValueError, nacl.exceptions.CryptoError) as err:
            print(f"FAIL: cannot decrypt: {err}", file=sys.stderr)
            return 1
        sys.stdout.buffer.write(plain)
        sys.stdout.buffer.flush()
        return 0
    usage("expected: key PASSPHRASE | encrypt KEYHEX PLAINTEXT | decrypt KEYHEX DATA_B64")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
