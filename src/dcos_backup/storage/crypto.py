"""Encryption at rest: AES-256-GCM in chunks, so that an archive of any size is encrypted and decrypted in
bounded memory, and any change to it (a flipped byte, chunks reordered, dropped, cut or appended) fails.

An encrypted object is an envelope around the plain bytes (docs/format.md)::

    8 bytes  magic b"DCOSENC\\n"
    1        version (1)
    1        algorithm (1 = AES-256-GCM)
    2        reserved (0)
    4        chunk size: plain bytes per chunk (big-endian; 1 MiB)
    8        key id: the first 8 bytes of sha256(b"dcos-backup key id\\0" + key); never the key
    8        nonce prefix, random per object
    then chunks of ciphertext + 16-byte tag; chunk i (from 0) is
        AES-256-GCM(key, nonce = prefix || u32 i, aad = the 32 header bytes || u64 i || u8 last)
    every chunk holds exactly "chunk size" plain bytes but the last, which holds 0 to "chunk size".

The header is in every chunk's AAD, so it cannot be changed either; the last chunk is the only one sealed
with ``last = 1``, so a stream cut at a chunk boundary or extended past its end fails like a flipped byte.
The key file holds the 32 key bytes, or their hex or base64 form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dcos_backup.errors import EncryptionKeyError, IntegrityError, UsageError
from dcos_backup.fsutil import Sink, Source, Stored, write_private_file

MAGIC = b"DCOSENC\n"
VERSION = 1
AES_256_GCM = 1
ALGORITHM = "AES-256-GCM"
CHUNK = 1 << 20
MAX_CHUNK = 64 << 20  # refused above: a hostile header must not make a reader allocate without bound
KEY_BYTES = 32
TAG = 16
_HEADER = struct.Struct(">8sBBHI8s8s")
HEADER_SIZE = _HEADER.size
_INDEX = struct.Struct(">Q?")
_KEY_ID_LABEL = b"dcos-backup key id\0"


@dataclass(frozen=True)
class EncryptionKey:
    """A 256-bit key and its public id (the id names it in records and errors; the key is never printed)."""

    secret: bytes = field(repr=False)
    id: str = ""

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise UsageError(f"an encryption key is {KEY_BYTES} bytes, not {len(self.secret)}")
        object.__setattr__(self, "id", key_id(self.secret))


def key_id(secret: bytes) -> str:
    return hashlib.sha256(_KEY_ID_LABEL + secret).digest()[:8].hex()


def parse_key(content: bytes, where: str) -> EncryptionKey:
    """The key in a key file: 32 raw bytes, or 64 hex digits, or the base64 of 32 bytes."""
    if len(content) == KEY_BYTES:
        return EncryptionKey(content)
    text = content.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            secret = decode(text.decode("ascii"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(secret) == KEY_BYTES:
            return EncryptionKey(secret)
    raise UsageError(f"{where} is not an encryption key: it must hold 32 bytes, or 64 hex digits, or their base64")


def load_key(path: Path, what: str = "encryption key file") -> EncryptionKey:
    """Read a key file; refuse one that other users may read (it unlocks every backup, or signs the
    records). ``what``: the file as the errors name it (the record key is no encryption key)."""
    try:
        mode = path.stat().st_mode
        content = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{what} {path} is readable by other users: chmod 600 {path}")
    return parse_key(content, str(path))


def create_key_file(path: Path) -> bool:
    """Make ``path`` a new random key (0600) unless it exists; True if it was created (by this call: of
    several processes creating it at once, one is told True and all end up with its key)."""
    if path.exists():
        return False
    try:
        write_private_file(path, os.urandom(KEY_BYTES), replace=False)
    except FileExistsError:
        return False
    return True


def _header(key: EncryptionKey, chunk: int, prefix: bytes) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, AES_256_GCM, 0, chunk, bytes.fromhex(key.id), prefix)


def _nonce(prefix: bytes, index: int) -> bytes:
    if index >= 1 << 32:
        raise IntegrityError("an encrypted archive may hold at most 2**32 chunks")
    return prefix + index.to_bytes(4, "big")


class EncryptingWriter(Sink):
    """Encrypts what is written to it into the sink ``out`` (which hashes what it stores)."""

    def __init__(self, out: Sink, key: EncryptionKey, chunk: int = CHUNK) -> None:
        self._out = out
        self._key = key
        self._aead = AESGCM(key.secret)
        self._chunk = chunk
        self._prefix = os.urandom(8)
        self._header = _header(key, chunk, self._prefix)
        self._buffer = bytearray()
        self._index = 0
        self._stored: Stored | None = None
        out.write(self._header)

    def write(self, data: bytes) -> int:
        self._buffer += data
        # Strictly more than a chunk: what is left at finish() (1 byte to a whole chunk) is the last chunk.
        while len(self._buffer) > self._chunk:
            self._seal(bytes(self._buffer[: self._chunk]), last=False)
            del self._buffer[: self._chunk]
        return len(data)

    def _seal(self, plain: bytes, last: bool) -> None:
        aad = self._header + _INDEX.pack(self._index, last)
        self._out.write(self._aead.encrypt(_nonce(self._prefix, self._index), plain, aad))
        self._index += 1

    def finish(self) -> Stored:
        """Seal the last chunk (once: finishing again returns the same result)."""
        if self._stored is None:
            self._seal(bytes(self._buffer), last=True)
            self._buffer = bytearray()
            stored = self._out.finish()
            self._stored = Stored(stored.size, stored.sha256, self._key.id)
        return self._stored


class DecryptingReader(Source):
    """The plain bytes of an encrypted object read from ``raw`` (whose first 8 bytes, the magic, were read
    already); every chunk is authenticated before a byte of it is handed out."""

    def __init__(self, raw: Source, key: EncryptionKey | None, what: str) -> None:
        self._raw = raw
        rest = _read_exactly(raw, HEADER_SIZE - len(MAGIC))
        if len(rest) < HEADER_SIZE - len(MAGIC):
            raise IntegrityError(f"{what}: encrypted archive is truncated (incomplete header)")
        self._header = MAGIC + rest
        _, version, algorithm, _, chunk, kid, self._prefix = _HEADER.unpack(self._header)
        if version != VERSION or algorithm != AES_256_GCM or not 0 < chunk <= MAX_CHUNK:
            raise IntegrityError(f"{what}: unsupported encrypted archive (version {version}, algorithm {algorithm})")
        if key is None:
            raise EncryptionKeyError(
                f"{what} is encrypted (key id {kid.hex()}) and no encryption key is configured "
                "(the service's --encryption-key-file)"
            )
        if kid.hex() != key.id:
            raise EncryptionKeyError(f"{what} is encrypted with the key {kid.hex()}, not with this key ({key.id})")
        self._what = what
        self._key_id = key.id
        self._aead = AESGCM(key.secret)
        self._block = chunk + TAG
        self._index = 0
        self._plain = memoryview(b"")
        self._next = _read_exactly(raw, self._block)
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._plain and not self._ended:
            self._open_next()
        if size < 0:
            parts = [bytes(self._plain)]
            self._plain = memoryview(b"")
            while not self._ended:
                self._open_next()
                parts.append(bytes(self._plain))
                self._plain = memoryview(b"")
            return b"".join(parts)
        data, self._plain = bytes(self._plain[:size]), self._plain[size:]
        return data

    def _open_next(self) -> None:
        sealed = self._next
        if len(sealed) < TAG:
            raise IntegrityError(f"{self._what}: encrypted archive is truncated (chunk {self._index} is incomplete)")
        following = _read_exactly(self._raw, self._block) if len(sealed) == self._block else b""
        last = not following
        aad = self._header + _INDEX.pack(self._index, last)
        try:
            self._plain = memoryview(self._aead.decrypt(_nonce(self._prefix, self._index), sealed, aad))
        except InvalidTag:
            raise IntegrityError(
                f"{self._what}: encrypted archive fails authentication at chunk {self._index} "
                "(damaged, tampered with, cut short or extended)"
            ) from None
        self._index += 1
        self._next = following
        self._ended = last

    def drain(self) -> Stored:
        stored = self._raw.drain()
        return Stored(stored.size, stored.sha256, self._key_id)


class PrefixedReader(Source):
    """``raw`` with ``head`` (bytes already read from it to look at) handed out again first."""

    def __init__(self, head: bytes, raw: Source) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._raw.read(size)
        if size < 0:
            data, self._head = self._head + self._raw.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data

    def drain(self) -> Stored:
        self._head = b""
        return self._raw.drain()


def plain_reader(raw: Source, key: EncryptionKey | None, what: str) -> Source:
    """The plain bytes of a stored object, decrypted if it is an encrypted envelope (told by its magic)."""
    head = _read_exactly(raw, len(MAGIC))
    if head == MAGIC:
        return DecryptingReader(raw, key, what)
    return PrefixedReader(head, raw)


def _read_exactly(raw: Source, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the stream (a stream may return short reads)."""
    parts, missing = [], size
    while missing:
        data = raw.read(missing)
        if not data:
            break
        parts.append(data)
        missing -= len(data)
    return b"".join(parts)
