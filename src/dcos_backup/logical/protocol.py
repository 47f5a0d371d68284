"""Request types the reader needs beside kazoo's protocol types, in ``kazoo.protocol.serialization``'s style.

Each is a named tuple with an opcode ``type``, ``serialize()`` and ``deserialize(bytes, offset)``, so
:class:`~dcos_backup.logical.wire.Connection` sends them like kazoo's own.

- :class:`MultiRead`: ZooKeeper's ``multiRead`` (3.6+, opcode 22), which kazoo does not have: getData and
  getChildren ops answered in one reply, costing the server about one request per batch.
- :class:`GetACLRequest`: kazoo's ``GetACL`` serialised in one step.

The reader sends two or three requests per znode; building kazoo request objects and serialising them
field by field cost a fifth of its time (profiled at 1M znodes), so the few fixed layouts are written
here with precompiled structs, a path as an int length + UTF-8, and no per-field objects.
"""

from __future__ import annotations

from collections import namedtuple
from typing import NamedTuple

from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import (
    GetACL,
    GetChildren,
    GetData,
    int_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    stat_struct,
)
from kazoo.protocol.states import ZnodeStat

GET_DATA = GetData.type
GET_CHILDREN = GetChildren.type
_ERROR = -1  # the op type of a failed op in a multi reply
_NO_WATCH = b"\x00"
_OP_HEADERS: dict[int, bytes] = {kind: multiheader_struct.pack(kind, False, -1) for kind in (GET_DATA, GET_CHILDREN)}
_MULTI_END: bytes = multiheader_struct.pack(-1, True, -1)
_HEADER_SIZE = multiheader_struct.size
_INT_SIZE = int_struct.size
_STAT_SIZE = stat_struct.size


def path_field(path: str) -> bytes:
    """A path as ZooKeeper's jute ``ustring``: int length + UTF-8."""
    raw = path.encode()
    length: bytes = int_struct.pack(len(raw))
    return length + raw


# What an op of a multiRead answers: what kazoo's own single request returns, as kazoo's Transaction
# does for multi. Named tuples for these two cost 2% of the reader's CPU (one more object per op,
# measured); the failure, which is rare, gets its own type.
DataResult = tuple[bytes | None, ZnodeStat]  # a getData op: (data, stat), as GetData.deserialize
ChildrenResult = list[str]  # a getChildren op: the names in the server's order, as GetChildren.deserialize


class ErrorResult(NamedTuple):
    """A failed op: ZooKeeper's error code (e.g. NONODE for a node deleted meanwhile)."""

    code: int

    def exception(self) -> Exception:
        exc: Exception = EXCEPTIONS[self.code]()
        return exc


ReadResult = DataResult | ChildrenResult | ErrorResult


class MultiRead(namedtuple("MultiRead", "ops")):
    """``multiRead`` of ``ops``: ``(GET_DATA | GET_CHILDREN, path)`` pairs, paths already chrooted, no watches.

    The reply has one :data:`ReadResult` per op, in order (a ``tuple``, a ``list`` or an
    :class:`ErrorResult`); one op failing does not fail the others.
    """

    __slots__ = ()
    type = 22

    def serialize(self) -> bytes:
        headers = _OP_HEADERS
        return b"".join([headers[kind] + path_field(path) + _NO_WATCH for kind, path in self.ops]) + _MULTI_END

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> list[ReadResult]:
        results: list[ReadResult] = []
        while True:
            kind, done, _ = multiheader_struct.unpack_from(buffer, offset)
            offset += _HEADER_SIZE
            if done:
                return results
            if kind == GET_DATA:
                data, offset = read_buffer(buffer, offset)
                results.append((data, ZnodeStat._make(stat_struct.unpack_from(buffer, offset))))
                offset += _STAT_SIZE
            elif kind == GET_CHILDREN:
                (count,) = int_struct.unpack_from(buffer, offset)
                offset += _INT_SIZE
                names = []
                for _ in range(max(count, 0)):
                    name, offset = read_string(buffer, offset)
                    names.append(name)
                results.append(names)
            elif kind == _ERROR:
                (code,) = int_struct.unpack_from(buffer, offset)
                offset += _INT_SIZE
                results.append(ErrorResult(code))
            else:
                raise ValueError(f"multiRead reply with an op of type {kind}")


class GetACLRequest(namedtuple("GetACLRequest", "path")):
    """kazoo's ``GetACL`` (same opcode, same reply), serialised without its intermediate buffer."""

    __slots__ = ()
    type = GetACL.type
    deserialize = GetACL.deserialize

    def serialize(self) -> bytes:
        return path_field(self.path)
