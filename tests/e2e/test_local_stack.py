"""The local stack as a newcomer meets it: `python -m sotong_local` in a subprocess, over HTTP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Running:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
        self.process, self.url, self.log = process, url, log

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def start_stack(tmp_path: Path, *extra: str) -> Running:
    port = free_port()
    log = (tmp_path / f"stack-{port}.log").open("w+b")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sotong_local",
            "--port",
            str(port),
            "--hospital",
            "hospitals/demo.yaml",
            "--sqs-visibility-timeout",
            "1",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = Running(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the stack exited with {process.returncode}:\n{running.output()}")
        try:
            requests.get(f"{running.url}/_local", timeout=2)  # any answer: it is up
            if "Ctrl-C" in running.output():  # and it has said so
                return running
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the stack did not answer within {STARTUP_S} s:\n{running.output()}")


def stop_stack(running: Running, timeout: float = 5.0) -> tuple[int, float]:
    started = time.monotonic()
    running.process.send_signal(signal.SIGINT)
    try:
        code = running.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()
        raise AssertionError(f"SIGINT did not stop the stack:\n{running.output()}") from None
    return code, time.monotonic() - started


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    if running.process.poll() is None:
        stop_stack(running)
    running.log.close()


def cli(stack: Running, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`sotong <command> ...` in a subprocess, pointed at this stack through the environment."""
    # `--` gets options past the outer parser of sotong_local.cli, which hands local commands over
    # as an argparse.REMAINDER (without it, `sotong token --role x` stops at the outer parser).
    return subprocess.run(
        [sys.executable, "-m", "sotong_local.cli", command, *(["--", *args] if args else [])],
        cwd=ROOT,
        env={**os.environ, "SOTONG_LOCAL_API": stack.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def command(
    stack: Running, capsys: pytest.CaptureFixture[str], name: str, *args: str
) -> tuple[int, str, str]:
    """`sotong_local.commands.main`, in this process, with the arguments a person would type."""
    from sotong_local import commands

    capsys.readouterr()
    code = commands.main(name, [*args, "--api", stack.url])
    out, err = capsys.readouterr()
    return code, out, err


def staff_token(stack: Running, **body: Any) -> str:
    response = requests.post(f"{stack.url}/_local/token", json=body, timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_health_answers_for_the_demo_hospital(stack: Running) -> None:
    response = requests.get(f"{stack.url}/health", timeout=10)
    assert response.status_code == 200, stack.output()
    assert response.json()["hospital_id"] == "demo"
    banner = stack.output()
    assert stack.url in banner
    assert "in memory" in banner
    assert "sotong token" in banner
    console = f"{stack.url}/console/"
    assert console in banner
    page = requests.get(console, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")


def test_staff_routes_need_a_token(stack: Running) -> None:
    response = requests.get(f"{stack.url}/outbox", timeout=10)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    bad = requests.get(f"{stack.url}/outbox", headers={"Authorization": "Bearer x.y.z"}, timeout=10)
    assert bad.status_code == 401
    token = staff_token(stack, role="cs_admin")
    response = requests.get(
        f"{stack.url}/outbox", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code != 401, response.text
    assert response.status_code == 200, stack.output()


def test_unknown_paths_answer_like_api_gateway(stack: Running) -> None:
    response = requests.get(f"{stack.url}/no/such/path", timeout=10)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_outbox_endpoint_and_command(stack: Running) -> None:
    response = requests.get(f"{stack.url}/_local/outbox", timeout=10)
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    text = requests.get(f"{stack.url}/_local/outbox?format=text", timeout=10)
    assert text.status_code == 200
    assert text.headers["Content-Type"].startswith("text/plain")
    result = cli(stack, "outbox")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_a_queued_message_reaches_the_outbox(
    stack: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """The queue poller runs the real notification_sender, which writes the sandbox outbox."""
    from sotong.notify.model import message_id

    queues = requests.get(f"{stack.url}/_local/queues", timeout=10).json()
    notifications = next(q for q in queues if q["queue"] == "notifications")
    assert notifications["consumers"] == ["notification_sender"]
    assert notifications["dlq"]["url"].endswith("-dlq")
    key = f"e2e-{uuid.uuid4()}"
    request = {
        "idempotency_key": key,
        "recipient": {"phone": "010-1234-5678", "contact_consent": True},
        "template_id": "complaint_survey",
        "variables": {"hospital": "소통", "survey_url": "https://example.invalid/s"},
        "urgent": True,
    }
    # Straight onto the queue, through moto's SQS API, as a producer function would.
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=notifications["url"].split("/123456789012/")[0],
        region_name="ap-northeast-2",
    )
    sqs.send_message(QueueUrl=notifications["url"], MessageBody=json.dumps(request))
    wanted = message_id("demo", key)
    deadline = time.monotonic() + 15
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        entries = requests.get(f"{stack.url}/_local/outbox?limit=50", timeout=10).json()
        if any(e.get("message_id") == wanted for e in entries):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"message {wanted} never reached the outbox:\n{stack.output()}")
    entry = next(e for e in entries if e.get("message_id") == wanted)
    assert entry["channel"] == "sms"
    assert "https://example.invalid/s" in entry["text"]
    code, out, _ = command(stack, capsys, "outbox", "--json", "--limit", "50")
    assert code == 0
    assert wanted in out
    code, out, _ = command(stack, capsys, "outbox", "--limit", "50")
    assert code == 0
    assert "sms → " in out
    assert "https://example.invalid/s" in out


def test_a_new_complaint_gets_a_second_opinion_from_the_stream(stack: Running) -> None:
    """The stream poller hands the stored complaint to the real complaint_reviewer."""
    body = {
        "text": "접수 안내가 늦었어요 " + uuid.uuid4().hex[:6],
        "contact": {"phone": "010-3333-4444"},
        "consent_to_contact": True,
    }
    answer = requests.post(f"{stack.url}/complaints", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "complaint_reviewer: SecondOpinion_kept" in stack.output():  # its metric, logged
            return
        time.sleep(0.2)
    raise AssertionError(f"complaint_reviewer never saw the complaint:\n{stack.output()}")


def test_every_command_the_banner_prints_works_as_written(stack: Running) -> None:
    """Copy, paste, run: each `.venv/bin/sotong ...` of the banner, and the token + curl pair."""
    import re
    import shutil

    banner = stack.output().split("Ctrl-C")[0]
    commands = re.findall(
        r"((?:SOTONG_LOCAL_API=\S+ )?\.venv/bin/sotong [^()\n]*?)(?=\s{2,}|\)|$)",
        banner,
        flags=re.MULTILINE,
    )
    assert len(commands) >= 4, banner
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    token_line = next(line for line in banner.splitlines() if "TOKEN=$(" in line)
    curl_line = next(line for line in banner.splitlines() if "then: curl" in line)
    if shutil.which("curl"):
        pair = (
            token_line.split("Staff token", 1)[1].strip()
            + " && "
            + curl_line.split("then: ", 1)[1].strip()
            + " --fail --silent"
        )
        done = subprocess.run(
            ["bash", "-c", pair], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (pair, done.stdout, done.stderr)


def test_every_local_command_the_readme_shows_works_as_written(stack: Running) -> None:
    """The README's `.venv/bin/sotong ...` and `curl http://127.0.0.1:8000/...` lines, run as typed
    (this stack listens elsewhere: only the address and $SOTONG_LOCAL_API change)."""
    import re
    import shutil

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        c for c in re.findall(r"`((?:\.venv/bin/sotong|curl) [^`]+)`", readme) if "<" not in c
    ]
    assert len(commands) >= 4, commands
    for command in commands:
        if command.startswith("curl") and not shutil.which("curl"):
            continue
        typed = command.replace("http://127.0.0.1:8000", stack.url)
        done = subprocess.run(
            ["bash", "-c", typed + (" --fail --silent" if typed.startswith("curl") else "")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SOTONG_LOCAL_API": stack.url},
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    validate = "`.venv/bin/sotong validate hospitals/<id>.yaml`"
    assert validate in readme  # the one with a placeholder: run with the demo's file
    done = subprocess.run(
        [".venv/bin/sotong", "validate", "hospitals/demo.yaml"], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, done.stderr


def test_token_command(stack: Running, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(stack, "token", "--role", "department_staff", "--department", "dental")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2
    response = requests.get(
        f"{stack.url}/outbox", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code != 401
    code, _, err = command(
        stack, capsys, "token", "--role", "department_staff", "--department", "nowhere"
    )
    assert code == 1
    assert "unknown department" in err


def test_run_a_schedule_now(stack: Running) -> None:
    listed = requests.get(f"{stack.url}/_local/schedules", timeout=10).json()
    release = next(job for job in listed if job["function"] == "notification_release")
    assert release["expression"] == "rate(5 minutes)"
    assert release["timezone"] == "Asia/Seoul"
    response = requests.post(
        f"{stack.url}/_local/schedules/notification_release/run",
        json={"clock_offset_seconds": 3600},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    assert response.json()["clock_offset_seconds"] == 3600
    result = cli(stack, "schedule", "notification_release", "--shift-hours", "11")
    assert result.returncode == 0, result.stderr
    assert "notification_release ran with the clock +11 h" in result.stdout
    after = requests.get(f"{stack.url}/_local/schedules", timeout=10).json()
    assert next(j for j in after if j["function"] == "notification_release")["runs"] >= 2
    unknown = requests.post(f"{stack.url}/_local/schedules/nothing/run", timeout=10)
    assert unknown.status_code == 404


def test_sigint_stops_the_stack_cleanly(tmp_path: Path) -> None:
    running = start_stack(tmp_path, "--quiet")
    try:
        code, took = stop_stack(running)
        assert code == 0, running.output()
        assert took < 5
    finally:
        running.log.close()


def sotong(stack: Running, *args: str) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/sotong ...` as typed, with only $SOTONG_LOCAL_API pointing at this stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOTONG_", "AWS_"))}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "sotong"), *args],
        cwd=ROOT,
        env={**env, "SOTONG_LOCAL_API": stack.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def enqueue(stack: Running, phone: str, **changes: Any) -> str:
    """A message request straight onto the notification queue; returns its message id."""
    import boto3

    from sotong.notify.model import message_id

    queues = requests.get(f"{stack.url}/_local/queues", timeout=10).json()
    url = next(q for q in queues if q["queue"] == "notifications")["url"]
    queue_url = changes.pop("queue_url", url)
    key = f"e2e-{uuid.uuid4()}"
    request = {
        "idempotency_key": key,
        "recipient": {"phone": phone, "contact_consent": True},
        "template_id": "complaint_survey",
        "variables": {"hospital": "소통", "survey_url": "https://example.invalid/s"},
        "urgent": True,
        **changes,
    }
    sqs = boto3.client(
        "sqs", endpoint_url=url.split("/123456789012/")[0], region_name="ap-northeast-2"
    )
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(request))
    return message_id("demo", key)


def record(stack: Running, mid: str) -> dict[str, Any]:
    token = staff_token(stack, role="cs_admin")
    response = requests.get(
        f"{stack.url}/messages/{mid}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return dict(response.json()) if response.status_code == 200 else {}


def wait_for(stack: Running, what: str, check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} never happened:\n{stack.output()[-4000:]}")


def outbox_entries(stack: Running, mid: str) -> list[dict[str, Any]]:
    entries = requests.get(f"{stack.url}/_local/outbox?limit=500", timeout=10).json()
    return [e for e in entries if e.get("message_id") == mid]


def test_a_shifted_release_reaches_the_outbox(stack: Running) -> None:
    """The shifted clock travels with the run: release → outbox item → relay → queue → sender."""
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    mid = enqueue(stack, "010-7000-0001", not_before=later)
    wait_for(stack, "the hold", lambda: record(stack, mid).get("status") == "held")
    result = sotong(stack, "schedule", "notification_release", "--shift-hours", "2")
    assert result.returncode == 0, result.stderr
    assert '"released": 1' in result.stdout, result.stdout
    [entry] = wait_for(stack, "the shifted send", lambda: outbox_entries(stack, mid))
    assert (entry["status"], entry["channel"]) == ("sent", "sms")
    assert record(stack, mid)["status"] == "sent"
    assert "as the run that sent them" in stack.output()


def test_one_vocabulary_faults_and_simulated_webhooks(stack: Running) -> None:
    # a 429 is retried after its Retry-After, and the sandbox accepts the message once
    armed = sotong(stack, "sandbox", "fail", "--mode", "429", "--count", "1", "--retry-after", "1")
    assert armed.returncode == 0, armed.stderr
    assert "429 Retry-After 1 s: 1 of 1 left" in armed.stdout
    mid = enqueue(stack, "010-7000-0002")
    [entry] = wait_for(stack, "the retried send", lambda: outbox_entries(stack, mid))
    events = [e["status"] for e in record(stack, mid)["events"]]
    assert events == ["calling", "retry", "calling", "sent"]
    # the outbox says what /messages says
    message = record(stack, mid)
    assert (entry["status"], entry["channel"]) == (message["status"], message["channel"])
    assert entry["sms_type"] in ("SMS", "LMS")
    assert "no faults armed" in sotong(stack, "sandbox").stdout

    # the provider's delivery report, signed as the provider signs
    report = sotong(stack, "simulate", "report", mid)
    assert report.returncode == 0, report.stderr
    assert '"applied": 1' in report.stdout
    assert record(stack, mid)["status"] == "delivered"
    assert outbox_entries(stack, mid)[0]["status"] == "delivered"
    text = sotong(stack, "outbox", "--limit", "50").stdout
    assert "sms → +821070000002  [delivered]" in text

    # an 080 opt-out: later SMS to the number are suppressed
    assert sotong(stack, "simulate", "optout", "--phone", "010-7000-0003").returncode == 0
    refused = enqueue(stack, "010-7000-0003")
    wait_for(stack, "the suppression", lambda: record(stack, refused).get("status") == "suppressed")
    # a patient's reply: 수신거부 is an opt-out too
    reply = sotong(stack, "simulate", "inbound", "--from", "010-7000-0004", "--text", "수신거부")
    assert reply.returncode == 0, reply.stderr
    assert '"opted_out": 1' in reply.stdout

    # not a KakaoTalk user: the AlimTalk goes as its SMS substitute, as the report says
    assert sotong(stack, "sandbox", "fail", "--mode", "not-kakao").returncode == 0
    body = {
        "text": "주차 안내가 없어요 " + uuid.uuid4().hex[:6],
        "contact": {"phone": "010-7000-0005"},
        "consent_to_contact": True,
    }
    assert requests.post(f"{stack.url}/complaints", json=body, timeout=10).status_code == 201
    token = staff_token(stack, role="cs_admin")

    def fallback() -> dict[str, Any] | None:
        listed = requests.get(
            f"{stack.url}/messages?recipient_phone=010-7000-0005",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["messages"]
        return next((m for m in listed if m["status"] == "fallback_sent"), None)

    message = wait_for(stack, "the fallback report", fallback)
    assert (message["channel"], message["delivered_channel"]) == ("alimtalk", "sms")
    [entry] = outbox_entries(stack, message["message_id"])
    assert (entry["status"], entry["delivered_channel"]) == ("fallback_sent", "sms")


def test_replay_dlq_and_import_treatments_find_the_local_stack(stack: Running) -> None:
    queues = requests.get(f"{stack.url}/_local/queues", timeout=10).json()
    dlq = next(q for q in queues if q["queue"] == "notifications")["dlq"]["url"]
    mid = enqueue(stack, "010-7000-0006", queue_url=dlq)
    replay = sotong(stack, "replay-dlq")
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1 message request(s)" in replay.stdout
    assert f"using the local stack at {stack.url}" in replay.stderr
    wait_for(stack, "the replayed send", lambda: outbox_entries(stack, mid))

    imported = sotong(stack, "import-treatments", "tests/data/treatments_sample.csv")
    assert imported.returncode == 1, imported.stderr  # the sample has bad rows on purpose
    assert "16 imported" in imported.stdout, imported.stdout
    # the stack's own API sees those rows (its tables, its hash key)
    token = staff_token(stack, role="cs_admin")
    again = sotong(
        stack,
        "import-treatments",
        "tests/data/treatments_sample.csv",
        "--api",
        stack.url,
        "--token",
        token,
        "--dry-run",
    )
    assert "16 already imported" in again.stdout, (again.stdout, again.stderr)
