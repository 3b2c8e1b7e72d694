"""Scheduled events, the outbox as people read it, and the stack's readable log lines."""

import json
from datetime import UTC, datetime

from sotong_local import logs
from sotong_local.events import schedule_arn, scheduled_event
from sotong_local.outbox_view import render


def test_scheduled_event_is_eventbridge_schedulers() -> None:
    arn = schedule_arn("sotong-demo-notification-release")
    event = scheduled_event(arn, datetime(2025, 1, 1, 23, 0, 0, 123456, tzinfo=UTC))
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.scheduler"
    assert event["time"] == "2025-01-01T23:00:00Z"
    assert event["resources"] == [
        "arn:aws:scheduler:ap-northeast-2:123456789012:schedule/default/sotong-demo-notification-release"
    ]
    assert event["detail"] == {}


def test_outbox_reads_oldest_first_in_local_time() -> None:
    entries = [
        {
            "sent_at": "2025-01-01T01:00:00.000000Z",
            "channel": "email",
            "to": "a@example.com",
            "subject": "결과",
            "text": "둘째 줄\n셋째 줄",
            "status": "delivered",
            "message_id": "m2",
        },
        {
            "sent_at": "2025-01-01T00:00:00.000000Z",
            "channel": "alimtalk",
            "to": "+821012345678",
            "text": "안녕하세요",
            "status": "sent",
            "message_id": "m1",
        },
    ]
    text = render(entries)
    assert text.index("m1") < text.index("m2")
    assert "2025-01-01 09:00:00 KST  alimtalk → +821012345678  [sent]" in text
    assert "  Subject: 결과" in text
    assert "  │ 셋째 줄" in text
    assert text.endswith("(2 messages)\n")
    assert "empty" in render([])


def test_powertools_lines_become_one_short_line() -> None:
    line = json.dumps(
        {
            "level": "INFO",
            "location": "x:1",
            "message": "held messages released",
            "timestamp": "t",
            "service": "notification_release",
            "cold_start": True,
            "function_request_id": "r",
            "released": 2,
        }
    )
    out = logs.compact(line)
    assert out.endswith("INFO  notification_release: held messages released  released=2")
    emf = json.dumps(
        {
            "_aws": {"CloudWatchMetrics": [{"Metrics": [{"Name": "Sent", "Unit": "Count"}]}]},
            "service": "sender",
            "Sent": [1.0],
        }
    )
    assert logs.compact(emf).endswith("METRIC sender: Sent=[1.0]")
    assert logs.compact("plain text") == "plain text"
    assert logs.compact('{"not": "a log"}') == '{"not": "a log"}'
