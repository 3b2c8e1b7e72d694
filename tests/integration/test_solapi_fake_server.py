"""The fake Solapi itself, over HTTP: Solapi's published shapes, type detection, the message
list, fault modes and thread safety. The provider tests rely on these behaviours."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3

from sotong.notify.providers.solapi import authorization_header
from tests.fakes.solapi_server import (
    FakeSolapi,
    accept_then_drop,
    fail,
    http_error,
    server_error,
)

# Fields without a default in the official SDK's pydantic models (solapi 5.0.3); an Optional
# field without a default must still be present (null allowed).
SEND_RESPONSE = {"groupInfo"}  # model/response/send_message_response.py SendMessageResponse
GROUP_INFO = {  # model/response/common_response.py GroupMessageResponse
    "count",
    "countForCharge",
    "balance",
    "point",
    "app",
    "log",
    "status",
    "allowDuplicates",
    "isRefunded",
    "accountId",
    "masterAccountId",
    "apiVersion",
    "groupId",
    "price",
    "dateCreated",
    "dateUpdated",
}
COUNT = {  # CountResponse
    "total",
    "sentTotal",
    "sentSuccess",
    "sentPending",
    "sentReplacement",
    "refund",
    "registeredFailed",
    "registeredSuccess",
}
CASH = {"requested", "replacement", "refund", "sum"}  # CommonCashResponse (balance, point)
FAILED_MESSAGE = {  # FailedMessage
    "to",
    "from",
    "type",
    "statusMessage",
    "country",
    "messageId",
    "statusCode",
    "accountId",
}
MESSAGE_ITEM = {"messageId", "statusCode", "statusMessage"}  # MessageItem
LIST_RESPONSE = {"limit", "messageList"}  # model/response/messages/get_messages.py
REPORT = {"data"}  # model/webhook/single_report.py SingleReport


@pytest.fixture
def fake() -> Iterator[FakeSolapi]:
    with FakeSolapi() as server:
        yield server


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager()


def post(
    fake: FakeSolapi, http: urllib3.PoolManager, messages: list[dict[str, Any]], **extra: Any
) -> tuple[int, Any]:
    body = {"messages": messages, "allowDuplicates": False, "showMessageList": True, **extra}
    response = http.request(
        "POST",
        fake.base_url + "/messages/v4/send-many/detail",
        body=json.dumps(body).encode(),
        headers={
            "Authorization": authorization_header(fake.api_key, fake.api_secret),
            "Content-Type": "application/json",
        },
        retries=False,
    )
    return response.status, json.loads(response.data)


def listing(
    fake: FakeSolapi, http: urllib3.PoolManager, path: str = "/messages/v4/list-old", **query: Any
) -> tuple[int, Any]:
    url = f"{fake.base_url}{path}?{urlencode(query)}" if query else fake.base_url + path
    response = http.request(
        "GET",
        url,
        headers={"Authorization": authorization_header(fake.api_key, fake.api_secret)},
        retries=False,
    )
    return response.status, json.loads(response.data)


def text(to: str, body: str = "내일 진료 안내", our_id: str | None = None, **extra: Any) -> dict:
    message: dict[str, Any] = {"to": to, "from": "0212345678", "text": body, **extra}
    if our_id:
        message["customFields"] = {"sotongMessageId": our_id}
    return message


def test_send_answer_has_every_field_the_sdk_model_requires(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    fake.script(fail("1030", "잔액 부족", only={"m-2"}))
    status, answer = post(
        fake,
        http,
        [text("01011110001", our_id="m-1"), text("01011110002", our_id="m-2")],
    )
    assert status == 200
    assert answer.keys() >= SEND_RESPONSE
    group = answer["groupInfo"]
    assert group.keys() >= GROUP_INFO
    assert group["count"].keys() >= COUNT
    assert all(isinstance(group["count"][k], int) for k in COUNT)
    assert group["balance"].keys() >= CASH
    assert group["point"].keys() >= CASH
    assert all(isinstance(group["balance"][k], float) for k in CASH)
    assert isinstance(group["log"], list)
    assert isinstance(group["app"], dict)
    assert all(
        isinstance(price, dict) and all(isinstance(v, float) for v in price.values())
        for price in group["price"].values()
    )
    assert all(isinstance(v, dict) for v in group["countForCharge"].values())
    assert isinstance(group["allowDuplicates"], bool)
    assert isinstance(group["isRefunded"], bool)
    for stamp in ("dateCreated", "dateUpdated"):
        datetime.fromisoformat(group[stamp].replace("Z", "+00:00"))
    [failed] = answer["failedMessageList"]
    assert failed.keys() >= FAILED_MESSAGE
    assert isinstance(failed["type"], str)
    assert failed["customFields"] == {"sotongMessageId": "m-2"}
    [listed] = answer["messageList"]
    assert listed.keys() >= MESSAGE_ITEM
    assert listed["customFields"] == {"sotongMessageId": "m-1"}
    assert (group["count"]["registeredSuccess"], group["count"]["registeredFailed"]) == (1, 1)


def test_message_list_is_left_out_unless_asked_for(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    _, answer = post(fake, http, [text("01011110001")], showMessageList=False)
    assert "messageList" not in answer
    assert answer["groupInfo"]["count"]["registeredSuccess"] == 1


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (text("01011110001", "가" * 45), "SMS"),  # 90 EUC-KR bytes
        (text("01011110001", "가" * 46), "LMS"),
        (text("01011110001", "a" * 91), "LMS"),
        (
            text("01011110001", kakaoOptions={"pfId": "KA01PF", "templateId": "TPL"}),
            "ATA",
        ),
        (text("01011110001", kakaoOptions={"pfId": "KA01PF"}), "CTA"),
    ],
)
def test_a_message_without_type_is_detected_as_solapi_does(
    fake: FakeSolapi, http: urllib3.PoolManager, message: dict[str, Any], kind: str
) -> None:
    status, answer = post(fake, http, [message])
    assert status == 200
    assert answer["failedMessageList"] == []
    [stored] = fake.accepted
    assert stored.message["type"] == kind
    _, page = listing(fake, http)
    [entry] = page["messageList"].values()
    assert (entry["type"], entry["autoTypeDetect"]) == (kind, True)


def test_detection_refuses_text_outside_euc_kr(fake: FakeSolapi, http: urllib3.PoolManager) -> None:
    _, answer = post(fake, http, [text("01011110001", "안녕하세요 🙂")])
    assert answer["failedMessageList"][0]["statusCode"] == "1029"


def test_duplicate_recipients_in_one_request_are_refused(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    _, answer = post(fake, http, [text("01011110001"), text("01011110001")])
    assert [f["statusCode"] for f in answer["failedMessageList"]] == ["1026"]
    _, allowed = post(fake, http, [text("01011110002"), text("01011110002")], allowDuplicates=True)
    assert allowed["failedMessageList"] == []


def test_message_list_shape_filters_and_paging(fake: FakeSolapi, http: urllib3.PoolManager) -> None:
    for i in range(5):
        post(fake, http, [text("01011110001", f"{i}번", our_id=f"m-{i}")])
    post(fake, http, [text("01099990000", our_id="m-other")])
    status, first = listing(fake, http, to="01011110001", limit=2)
    assert status == 200
    assert first.keys() >= LIST_RESPONSE
    assert first["startKey"] is None
    assert isinstance(first["messageList"], dict)  # keyed by message id, not a list
    entries = list(first["messageList"].values())
    assert [e["customFields"]["sotongMessageId"] for e in entries] == ["m-4", "m-3"]  # newest
    assert all(key == entry["messageId"] for key, entry in first["messageList"].items())
    _, second = listing(fake, http, to="01011110001", limit=2, startKey=first["nextKey"])
    assert second["startKey"] == first["nextKey"]
    assert next(iter(second["messageList"])) == first["nextKey"]
    _, third = listing(fake, http, to="01011110001", limit=2, startKey=second["nextKey"])
    assert [e["customFields"]["sotongMessageId"] for e in third["messageList"].values()] == ["m-0"]
    assert third["nextKey"] is None
    _, everyone = listing(fake, http, path="/messages/v4/list")
    assert len(everyone["messageList"]) == 5 + 1 == len(fake.accepted)


def test_message_list_date_window_status_and_validation(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    post(fake, http, [text("01011110001", our_id="old")])
    post(fake, http, [text("01011110001", our_id="new")])
    fake.accepted[0].accepted_at -= timedelta(hours=1)
    now = datetime.now(UTC)
    window = {
        "startDate": (now - timedelta(minutes=5)).isoformat(),  # "+00:00" travels encoded
        "endDate": (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _, recent = listing(fake, http, to="01011110001", dateType="CREATED", **window)
    assert [e["customFields"]["sotongMessageId"] for e in recent["messageList"].values()] == ["new"]
    fake.set_status("old", "4000")
    _, done = listing(fake, http, statusCode="4000")
    [entry] = done["messageList"].values()
    assert (entry["customFields"]["sotongMessageId"], entry["status"]) == ("old", "COMPLETE")
    assert entry["dateReceived"] is not None
    _, updated = listing(fake, http, dateType="UPDATED", **window)
    assert len(updated["messageList"]) == 2  # the old one changed just now
    assert listing(fake, http, limit=0)[0] == 400
    assert listing(fake, http, limit=501)[0] == 400
    assert listing(fake, http, startDate="yesterday")[0] == 400


def test_message_list_needs_a_valid_signature(fake: FakeSolapi, http: urllib3.PoolManager) -> None:
    response = http.request("GET", fake.base_url + "/messages/v4/list-old", retries=False)
    assert response.status == 401
    assert fake.list_requests()[0].method == "GET"


def test_list_faults_are_scripted_apart_from_sends(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    fake.script_list(server_error(503), http_error(400, "ValidationError"))
    assert post(fake, http, [text("01011110001")])[0] == 200
    assert listing(fake, http)[0] == 503
    assert listing(fake, http)[0] == 400
    assert listing(fake, http)[0] == 200


def test_accepted_copies_count_every_stored_duplicate(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    post(fake, http, [text("01011110001", our_id="m-1")])
    fake.script(accept_then_drop())
    with pytest.raises(urllib3.exceptions.ProtocolError):
        post(fake, http, [text("01011110001", our_id="m-1")])
    assert fake.accepted_copies("m-1") == 2
    assert fake.sends_for("m-1") == 2
    assert fake.accepted_copies("m-unknown") == 0
    assert fake.accepted_total() == 2


def test_refusing_connections_keeps_the_port(fake: FakeSolapi, http: urllib3.PoolManager) -> None:
    url = fake.base_url
    post(fake, http, [text("01011110001")])  # leaves a keep-alive connection in the pool
    fake.refuse_connections()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1),
    ):
        pass
    with pytest.raises(urllib3.exceptions.HTTPError):
        post(fake, http, [text("01011110002")])
    fake.accept_connections()
    assert fake.base_url == url
    assert post(fake, http, [text("01011110003")])[0] == 200
    assert fake.accepted_total() == 2


def test_concurrent_requests_are_all_counted(fake: FakeSolapi) -> None:
    http = urllib3.PoolManager(maxsize=8)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            batch = [text(f"0101111{i:02d}{j:02d}", our_id=f"m-{i}-{j}") for j in range(20)]
            status, answer = post(fake, http, batch)
            assert status == 200
            assert len(answer["messageList"]) == 20
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert fake.accepted_total() == 160
    assert len({a.provider_message_id for a in fake.accepted}) == 160


def test_report_bodies_have_the_sdk_report_shape(
    fake: FakeSolapi, http: urllib3.PoolManager
) -> None:
    post(fake, http, [text("01011110001", our_id="m-1")])
    [event] = json.loads(fake.report_body("m-1"))
    assert event.keys() >= REPORT
    assert {"messageId", "groupId", "type", "to", "from", "statusCode"} <= event["data"].keys()
    assert event["data"]["customFields"] == {"sotongMessageId": "m-1"}
    [inbound] = json.loads(fake.inbound_body("01011110001", "네"))
    assert inbound.keys() >= REPORT
