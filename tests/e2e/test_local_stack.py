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
    # `--` gets options past the outer parser of sotong.cli, which hands local commands over
    # as an argparse.REMAINDER (without it, `sotong token --role x` stops at the outer parser).
    return subprocess.run(
        [sys.executable, "-m", "sotong.cli", command, *(["--", *args] if args else [])],
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
