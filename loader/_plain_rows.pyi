from collections.abc import Iterable
from typing import final

@final
class PlainRows:
    def __len__(self) -> int: ...
    def run_names(self) -> dict[str, str | None] | None: ...
    def run_stages(self) -> set[tuple[str, str]]: ...
    def copy_data(
        self, run_ids: dict[str, int], stage_ids: dict[tuple[int, str], int], /
    ) -> bytes: ...
    def fields(
        self,
    ) -> list[
        tuple[
            bytes,
            str,
            int,
            str,
            None,
            str | None,
            str | None,
            int | None,
            str | None,
            int,
            int,
            None,
        ]
    ]: ...
    def partition(self, count: int, /) -> list[tuple[PlainRows, list[int]]]: ...

def plain_rows(lines: Iterable[bytes], /) -> PlainRows | None: ...
