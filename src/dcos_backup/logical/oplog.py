"""The operations of a difference, kept on disk between the pass that computes them and the one that sends them.

A restore computes its difference in the same pass as its safety backup (one read of the live tree) but
may change nothing until that backup is complete and journalled; :class:`OpLog` is the planner's sink
(:class:`~.merge.OpSink`) for that pass: it writes each operation to an anonymous temporary file
(msgpack, bounded memory whatever the difference's size) and replays them, in order, for
:func:`~dcos_backup.logical.apply_ops`. The file is unlinked from the start: no other process can swap it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import msgpack
from kazoo.protocol.serialization import Create, Delete, SetACL, SetData
from kazoo.security import ACL, Id

from dcos_backup.logical.merge import RaiseCounter

_CREATE, _SET_DATA, _DELETE, _SET_ACL, _RAISE = range(5)
_READ_CHUNK = 1 << 16


def _acl_out(acl: list[ACL]) -> list[list[object]]:
    return [[a.perms, a.id.scheme, a.id.id] for a in acl]


def _acl_in(acl: list[list[Any]]) -> list[ACL]:
    return [ACL(int(p), Id(str(s), str(i))) for p, s, i in acl]


def _encode(op: Any) -> list[object]:  # kazoo's operations are untyped
    kind = type(op)
    if kind is Create:
        return [_CREATE, op.path, op.data, _acl_out(op.acl), op.flags]
    if kind is SetData:
        return [_SET_DATA, op.path, op.data, op.version]
    if kind is Delete:
        return [_DELETE, op.path, op.version]
    if kind is SetACL:
        return [_SET_ACL, op.path, _acl_out(op.acls), op.version]
    if kind is RaiseCounter:
        return [_RAISE, op.path, op.creates]
    raise TypeError(f"not an operation of a difference: {op!r:.80}")


def _decode(item: list[Any]) -> object:
    kind = item[0]
    if kind == _CREATE:
        return Create(item[1], item[2], _acl_in(item[3]), item[4])
    if kind == _SET_DATA:
        return SetData(item[1], item[2], item[3])
    if kind == _DELETE:
        return Delete(item[1], item[2])
    if kind == _SET_ACL:
        return SetACL(item[1], _acl_in(item[2]), item[3])
    return RaiseCounter(item[1], item[2])


class OpLog:
    """An :class:`~.merge.OpSink` that keeps the operations for later; iterate it (once it is complete) to
    replay them. Use as a context manager: the file goes when it ends."""

    def __init__(self, directory: str | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - closed by close()
        self._packer = msgpack.Packer(use_bin_type=True)
        self.count = 0

    def add(self, op: object) -> None:
        self._file.write(self._packer.pack(_encode(op)))
        self.count += 1

    def tick(self) -> None:
        """Nothing to keep alive: the planning pass only reads."""

    def __iter__(self) -> Iterator[object]:
        self._file.flush()
        self._file.seek(0)
        unpacker = msgpack.Unpacker(raw=False)
        while chunk := self._file.read(_READ_CHUNK):
            unpacker.feed(chunk)
            for item in unpacker:
                yield _decode(item)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> OpLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
