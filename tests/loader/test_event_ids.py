"""New event ids: UUIDv7s whose random bits no two processes share.

`new_event_id` draws its random bits from the OS a thousand ids at a time
(`loader.contract._random_bits`): a forked child inherits what its parent drew and has
not used yet, and must not use it too. (Within a process, `list.pop` hands each value to
one thread: CPython's guarantee, which no test here could catch breaking.)
"""

from __future__ import annotations

import os
import uuid

from loader.contract import new_event_id

RANDOM_BITS = (1 << 80) - 1


def random_part(event_id: uuid.UUID) -> int:
    """The low 80 bits: the version, the variant and the 74 random bits."""
    return event_id.int & RANDOM_BITS


def test_a_forked_child_draws_none_of_its_parents_random_bits() -> None:
    new_event_id()  # the parent has drawn from the OS: values wait for its next ids
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next ids, to the parent
        try:
            os.write(write_end, b"".join(new_event_id().bytes for _ in range(100)))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        received = pipe.read()
    os.waitpid(child, 0)
    childs = {random_part(uuid.UUID(bytes=received[at : at + 16])) for at in range(0, 1600, 16)}
    parents = {random_part(new_event_id()) for _ in range(100)}
    assert len(childs) == 100
    assert not childs & parents
    assert {uuid.UUID(bytes=received[:16]).version, new_event_id().version} == {7}
