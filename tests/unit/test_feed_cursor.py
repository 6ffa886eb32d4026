"""Unit: SSE event ids of the feeds, Kafka positions per partition, and what is refused."""

from __future__ import annotations

import pytest

from services.telemetry.feed_cursor import MalformedEventId, decode_cursor, encode_cursor
from services.telemetry.feeds import FeedEvent, Subscription


def test_an_id_names_the_last_offset_passed_per_partition_and_decodes_to_the_next() -> None:
    assert encode_cursor({2: 9, 0: 42, 1: 0}) == "0-41.2-8"
    assert decode_cursor("0-41.2-8", partitions=3) == {0: 42, 2: 9}


@pytest.mark.parametrize(
    "text",
    ["", "abc", "0-1.0-2", "3-1", "0--1", "-1-4", "0-1.", "0-1,1-2", "0-" + "9" * 20, "0-1." * 400],
)
def test_an_id_this_server_did_not_hand_out_is_refused(text: str) -> None:
    with pytest.raises(MalformedEventId):
        decode_cursor(text, partitions=3)


def test_a_subscription_passes_a_record_once_and_moves_past_filtered_ones() -> None:
    subscription = Subscription("fire", frozenset({"alert.low_battery"}), None, positions={0: 5})
    alert = {"type": "alert.low_battery"}
    assert subscription.offer(0, 4, b"{}", alert) is None  # before the position: sent already
    assert subscription.offer(0, 5, b"{}", {"type": "drone.position"}) is None
    event = subscription.offer(0, 6, b'{"type":"alert.low_battery"}', alert)
    assert event == FeedEvent("0-6", "alert.low_battery", b'{"type":"alert.low_battery"}')
    assert subscription.offer(0, 6, b"{}", alert) is None  # the same record again
    assert event.sse() == (
        b'id: 0-6\nevent: alert.low_battery\ndata: {"type":"alert.low_battery"}\n\n'
    )
