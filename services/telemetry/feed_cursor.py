"""SSE event ids of a department feed: Kafka positions, so any replica can resume after one.

An id lists, per partition of `airgrid.feed.<code>`, the last offset the stream has passed
for its client: `<partition>-<offset>` pairs joined by `.`, e.g. `0-41.1-17.2-8`. The event's
own record is always one of the pairs. A partition the stream has passed nothing on is left
out and resumes from its earliest retained record. The positions are the broker's, not the
replica's, so the next stream (on any replica) starts each partition right after its pair.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_ID_CHARS = 1024
_PAIR = re.compile(r"^(\d{1,4})-(\d{1,19})$")


class MalformedEventId(ValueError):
    """A Last-Event-ID this server did not hand out; the message says what is wrong."""


def encode_cursor(next_offsets: Mapping[int, int]) -> str:
    """The id of the stream's position: `next_offsets` maps partition to next offset."""
    return ".".join(
        f"{partition}-{offset - 1}" for partition, offset in sorted(next_offsets.items()) if offset
    )


def decode_cursor(text: str, partitions: int) -> dict[int, int]:
    """Partition → next offset to read, from an id of a feed with `partitions` partitions."""
    if len(text) > MAX_ID_CHARS:
        raise MalformedEventId(f"it is longer than {MAX_ID_CHARS} characters")
    next_offsets: dict[int, int] = {}
    for pair in text.split("."):
        match = _PAIR.match(pair)
        if match is None:
            raise MalformedEventId(f"{pair[:40]!r} is not <partition>-<offset>")
        partition, offset = int(match.group(1)), int(match.group(2))
        if partition >= partitions:
            raise MalformedEventId(f"partition {partition} does not exist (0..{partitions - 1})")
        if partition in next_offsets:
            raise MalformedEventId(f"partition {partition} appears twice")
        if offset >= 2**63 - 1:
            raise MalformedEventId(f"offset {offset} is out of range")
        next_offsets[partition] = offset + 1
    return next_offsets
