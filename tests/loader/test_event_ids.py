"""New event ids: UUIDv7s whose random bits no two threads or processes share.

`new_event_id` draws its random bits from the OS a thousand ids at a time
(`loader.contract._random_bits`): each drawn value must go to one caller only, in a
process's threads and across a fork, where the child inherits what its parent drew.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from loader.contract import new_event_id

RANDOM_BITS = (1 << 80) - 1


def random_part(event_id: uuid.UUID) -> int:
    """The low 80 bits: the version, the variant and the 74 random bits."""
    return event_id.int & RANDOM_BITS


def test_threads_drawing_at_once_never_get_the_same_id() -> None:
    def draw(_: int) -> list[uuid.UUID]:
        return [new_event_id() for _ in range(5_000)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        drawn = [event_id for ids in pool.map(draw, range(8)) for event_id in ids]
    assert len({random_part(event_id) for event_id in drawn}) == len(drawn) == 40_000
    assert {event_id.version for event_id in drawn} == {7}
    assert {event_id.variant for event_id in drawn} == {uuid.RFC_4122}


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
