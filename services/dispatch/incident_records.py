"""The incident topic as the dispatch worker reads it: records decoded and deduplicated,
and a lost log's committed offsets read again from the start."""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from opentelemetry.context import Context

from airgrid import tracing
from airgrid.bus import SeenIds, header
from airgrid.observability import RECORDS_CONSUMED
from airgrid.v1 import incident_pb2

log = logging.getLogger("airgrid.dispatch")

# An incident event, when its record was consumed (perf counter), and the trace context
# its record carries.
IncidentEventRecord = tuple[incident_pb2.IncidentEvent, float, Context | None]


def decode_incident_events(
    records: list[ConsumerRecord[bytes, bytes]], seen: SeenIds
) -> list[IncidentEventRecord]:
    """The batch's incident events, without the records seen already (counted as
    duplicates) and without the undecodable ones (counted, logged and skipped)."""
    events: list[IncidentEventRecord] = []
    for record in records:
        if seen.contains(header(record, "ce_id")):
            RECORDS_CONSUMED.labels("dispatch", "duplicate").inc()
            continue
        try:
            event = incident_pb2.IncidentEvent.FromString(record.value or b"")
        except Exception:
            RECORDS_CONSUMED.labels("dispatch", "undecodable").inc()
            log.error("undecodable incident event skipped", extra={"offset": record.offset})
            continue
        RECORDS_CONSUMED.labels("dispatch", "ok").inc()
        events.append((event, time.perf_counter(), tracing.context_of_headers(record.headers)))
    return events


async def rewind_offsets_past_the_end(consumer: AIOKafkaConsumer) -> None:
    """Offsets out of range on a broker that lost its log: the group's committed offset of a
    partition can lie past the partition's end (an empty broker, or the embedded one's ends
    going backwards). The consumer would wait there and skip every record written below it,
    so such partitions are read from their start; what was decided already is a replay."""
    partitions = sorted(consumer.assignment())
    if not partitions:
        return
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        committed = await consumer.committed(tp)
        if committed is not None and committed > ends[tp]:
            log.warning(
                "committed offset past the partition's end; reading it from the start",
                extra={"partition": f"{tp.topic}[{tp.partition}]", "committed": committed,
                       "end": ends[tp]},
            )  # fmt: skip
            await consumer.seek_to_beginning(tp)
