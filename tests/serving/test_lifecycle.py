"""Endpoints over their lifetime: deploy, replace, expire, get killed, get torn down.

These run real server processes through LocalBackend and the workflows, with the stub
handler (tests/serving/stub_model.py) so a request can be held in flight on purpose and a
server starts without importing torch. No assertion depends on how long anything takes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from dogbreed.backends.local import LocalBackend
from dogbreed.config import load_config
from dogbreed.errors import DogbreedError
from dogbreed.serving import limits
from dogbreed.serving.errors import EndpointUnavailableError
from dogbreed.serving.process import is_alive, stop_server
from dogbreed.workflows import deploy as deploy_step
from dogbreed.workflows import predict as predict_step
from dogbreed.workflows import status as status_step
from dogbreed.workflows import teardown as teardown_step
from dogbreed.workspace import Workspace
from tests.conftest import dogbreed_cli
from tests.serving.conftest import servers_under
from tests.serving.images import BEAGLE

pytestmark = pytest.mark.usefixtures("no_server_left")


def wait_until(condition, what: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def backend_for(tmp_path: Path, **settings) -> LocalBackend:
    overrides = {"workspace": str(tmp_path / ".dogbreed"), "deploy.port": 0, "deploy.endpoint_name": "stubby"}
    overrides.update({f"deploy.{key}": value for key, value in settings.items()})
    config = load_config(overrides=overrides)
    return LocalBackend(config, Workspace(Path(config.workspace)))


def deploy(backend: LocalBackend, model: Path, wait: bool = True):
    # The stub model's handler is not dogbreed's: serving it takes --trust-code (#15 item 9).
    ledger = backend.workspace.ledger
    return deploy_step.deploy(backend.config, backend, ledger, str(model), wait=wait, trust_code=True).endpoint


def hold_request(url: str, results: list) -> threading.Thread:
    def send() -> None:
        port = int(url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request("POST", "/invocations", body=b"hold", headers={"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        results.append((response.status, response.read()))

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_sigterm_lets_the_request_in_flight_finish(start_server, stub_model_dir):
    server = start_server(stub_model_dir).wait_ready()
    results: list = []
    thread = hold_request(server.url, results)
    wait_until((stub_model_dir / "held").exists, "the request to reach predict_fn")
    server.process.send_signal(signal.SIGTERM)
    # The listener closes at once: new clients are refused while the held request runs.
    wait_until(lambda: _refuses(server.port), "the listener to close")
    assert server.process.poll() is None  # still finishing the request in flight
    (stub_model_dir / "release").touch()
    thread.join(timeout=120)
    assert results and results[0][0] == 200
    assert server.process.wait(timeout=120) == 0
    assert "stopping (stopped by signal)" in server.log.read_text()


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the probe reached the backlog of a listener that was closing, and was dropped.
        return True


def test_an_invocation_over_the_time_limit_gets_504_and_the_server_goes_on(start_server, stub_model_dir):
    server = start_server(stub_model_dir, "--timeout", "1", "--workers", "2").wait_ready()
    results: list = []
    hold_request(server.url, results).join(timeout=120)
    status, body = results[0]
    assert status == 504 and json.loads(body)["error"] == "timeout"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("POST", "/invocations", body=b"quick", headers={"Content-Type": "image/jpeg"})
    assert connection.getresponse().status == 200
    (stub_model_dir / "release").touch()


def test_ttl_expiry_stops_the_server_and_marks_it_gone(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path, ttl="3s")
    info = deploy(backend, stub_model_dir)
    wait_until(lambda: not is_alive(info.extra["pid"]), "the server to expire", limit_s=300)
    record = backend.workspace.ledger.get("endpoint", "stubby", "local")
    assert record.state == "gone" and record.meta["stopped"] == "ttl expired"
    assert status_step.status(backend.config, backend.workspace.ledger, {"local": backend}).resources == []


def test_kill_9_shows_as_gone_and_teardown_cleans_up_once(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path, ttl="10m")
    ledger = backend.workspace.ledger
    info = deploy(backend, stub_model_dir)
    assert info.state == "in-service"
    os.kill(info.extra["pid"], signal.SIGKILL)
    wait_until(lambda: not is_alive(info.extra["pid"]), "the kill")

    resources = status_step.status(backend.config, ledger, {"local": backend}).resources
    assert [(r["name"], r["state"], r["checked"]) for r in resources] == [("stubby", "gone", True)]
    assert ledger.get("endpoint", "stubby", "local").state == "gone"
    with pytest.raises(EndpointUnavailableError, match="dogbreed deploy --endpoint stubby"):
        predict_step.predict(backend, ledger, [str(BEAGLE)], endpoint="stubby")

    first = teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))
    assert (first.deleted, first.not_found) == (["stubby"], [])
    assert not (backend.workspace.root / "endpoints" / "stubby").exists()
    assert ledger.get("endpoint", "stubby", "local").state == "deleted"
    second = teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))
    assert (second.deleted, second.not_found) == ([], ["stubby"])


def test_a_stopped_server_times_out_predict_and_stopping_it_lets_it_drain_and_exit(tmp_path, stub_model_dir):
    """A server frozen by SIGSTOP (Ctrl-Z, a debugger, a paused container) kept the SIGTERM of
    teardown or a redeploy pending until the 70 s grace ran out and it was killed with -9,
    never draining nor marking itself gone. Now it is woken and stops as SIGTERM stops it."""
    backend = backend_for(tmp_path, ttl="10m")
    ledger = backend.workspace.ledger
    info = deploy(backend, stub_model_dir)
    pid = info.extra["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, "the server to stop")
        with pytest.raises(EndpointUnavailableError, match="stubby"):
            predict_step.predict(backend, ledger, [str(BEAGLE)], endpoint="stubby")
        assert backend.describe_endpoint("stubby").state == "failed"  # alive, holding its port: not gone
        assert stop_server(pid, "stubby")
        assert not is_alive(pid)
        # Its own SIGTERM path ran (drain, mark itself gone), not a SIGKILL after the grace.
        assert "stopping (stopped by signal)" in Path(info.extra["log"]).read_text()
        record = ledger.get("endpoint", "stubby", "local")
        assert record.state == "gone" and record.meta.get("stopped") == "stopped by signal"
    finally:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)
    teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))


def _copies_of_a_photo(folder: Path, count: int) -> list[Path]:
    photos = [folder / f"dog{index}.jpg" for index in range(count)]
    for photo in photos:
        photo.write_bytes(BEAGLE.read_bytes())
    return photos


def test_a_server_that_freezes_after_predict_checked_it_stops_predict_once_requests_in_flight_time_out(
    tmp_path, stub_model_dir, monkeypatch
):
    """Frozen between predict's check and its requests, a server answered nothing: each photo
    waited out the client's 70 s timeout in turn (4 at a time) and became an error row. After
    the first such timeout predict asks /ping again, and stops with the one line."""
    monkeypatch.setattr(limits, "CLIENT_TIMEOUT_S", 3.0)  # the requests in flight wait this out, not 70 s
    backend = backend_for(tmp_path, ttl="10m")
    ledger = backend.workspace.ledger
    pid = deploy(backend, stub_model_dir).extra["pid"]
    photos = _copies_of_a_photo(tmp_path, 6)
    checked = backend.describe_endpoint

    def freeze_after_the_check(name):
        info = checked(name)
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, "the server to stop")
        return info

    backend.describe_endpoint = freeze_after_the_check
    try:
        with pytest.raises(EndpointUnavailableError, match="stubby .*is not answering any more"):
            predict_step.predict(backend, ledger, [str(p) for p in photos], endpoint="stubby", concurrency=2)
    finally:
        backend.describe_endpoint = checked
        os.kill(pid, signal.SIGCONT)
        teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))


def test_a_server_killed_mid_run_keeps_the_answers_predict_already_has(tmp_path, stub_model_dir):
    """Killed after two answers, the server used to cost the whole run: predict raised its one
    line and printed none of the answers it had. Now it sends no more, keeps the two, and
    lists every other photo as an error row (the CLI exits 1 after printing them)."""
    backend = backend_for(tmp_path, ttl="10m")
    ledger = backend.workspace.ledger
    pid = deploy(backend, stub_model_dir).extra["pid"]
    photos = _copies_of_a_photo(tmp_path, 6)
    invoke, sent = backend.invoke, []

    def kill_after_two(*args, **kwargs):
        sent.append(1)
        if len(sent) == 3:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not is_alive(pid), "the server to die")
        return invoke(*args, **kwargs)

    backend.invoke = kill_after_two
    try:
        result = predict_step.predict(backend, ledger, [str(p) for p in photos], endpoint="stubby", concurrency=1)
    finally:
        backend.invoke = invoke
        teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))
    assert [row["image"] for row in result.predictions] == [str(p) for p in photos[:2]]
    assert [row["image"] for row in result.errors] == [str(p) for p in photos[2:]]
    assert "not answering" in result.errors[0]["error"]
    assert all(row["error"].startswith("not sent: ") for row in result.errors[1:])
    assert len(sent) == 3  # nothing sent after the endpoint went away


def test_teardown_leaves_an_endpoint_a_deploy_still_holds_and_names_the_deploy(tmp_path, stub_model_dir, monkeypatch, capsys):
    """`teardown` while a deploy of the same name ran used to delete the endpoint under it,
    and the deploy then reported it in service at a URL where nothing ran. Teardown takes the
    deploy's lock of the name: it waits for the deploy (seconds for a local one; 3 tries here,
    not 60 s) and deletes what it made; one still running is named, its endpoint left alone."""
    from dogbreed.cli.app import run
    from dogbreed.workflows.deploy import deploy_lock

    monkeypatch.setattr(teardown_step, "DEPLOY_WAIT_ATTEMPTS", 3)
    backend = backend_for(tmp_path, ttl="10m")
    ledger = backend.workspace.ledger
    pid = deploy(backend, stub_model_dir).extra["pid"]
    where = ["--set", f"workspace={backend.workspace.root}"]
    try:
        with deploy_lock(ledger, "local", "stubby").hold():  # a redeploy of it, still running
            code = run(["teardown", "--all", "--yes", "--json", *where])
            out, err = capsys.readouterr()
        assert code == 1
        assert err.strip().splitlines()[-1] == (
            f"error: endpoint stubby not deleted: a deploy of endpoint stubby is already running (pid {os.getpid()}); "
            "run teardown again once it ends"
        )
        assert json.loads(out)["deleted"] == []
        assert is_alive(pid) and ledger.get("endpoint", "stubby", "local").state == "in-service"

        code = run(["teardown", "--all", "--yes", "--json", *where])  # the deploy has ended
        assert code == 0
        assert json.loads(capsys.readouterr().out)["deleted"] == ["stubby"]
        assert ledger.get("endpoint", "stubby", "local").state == "deleted"
    finally:
        teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))


def test_teardown_never_kills_a_process_that_merely_has_the_pid(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path)
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        backend.workspace.ledger.record(
            "endpoint", "stubby", "local", uri="http://127.0.0.1:9", state="in-service", meta={"pid": stranger.pid}
        )
        assert backend.describe_endpoint("stubby").state == "gone"
        ledger = backend.workspace.ledger
        result = teardown_step.teardown(backend, ledger, teardown_step.select(ledger, "local", ["stubby"]))
        assert result.deleted == ["stubby"]
        assert stranger.poll() is None
        assert ledger.get("endpoint", "stubby", "local").state == "deleted"
    finally:
        stranger.kill()
        stranger.wait()


def test_redeploy_replaces_the_server_in_place(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path, ttl="10m")
    first = deploy(backend, stub_model_dir)
    second = deploy(backend, stub_model_dir)
    assert second.extra["pid"] != first.extra["pid"]
    assert not is_alive(first.extra["pid"]) and is_alive(second.extra["pid"])
    record = backend.workspace.ledger.get("endpoint", "stubby", "local")
    assert record.meta["pid"] == second.extra["pid"] and record.state == "in-service"
    releases = list((backend.workspace.root / "endpoints" / "stubby").iterdir())
    assert len(releases) == 1  # the old release folder went with the old server
    assert json.loads(backend.invoke("stubby", b"abc", "image/jpeg"))["bytes"] == 3
    backend.delete_endpoint("stubby")


def test_redeploy_on_the_same_fixed_port(tmp_path, stub_model_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = backend_for(tmp_path, ttl="10m", port=port)
    first = deploy(backend, stub_model_dir)
    second = deploy(backend, stub_model_dir)
    assert second.url == first.url == f"http://127.0.0.1:{port}"
    assert not is_alive(first.extra["pid"]) and backend.describe_endpoint("stubby").state == "in-service"
    backend.delete_endpoint("stubby")


def test_a_taken_port_is_one_clear_error(tmp_path, stub_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        backend = backend_for(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(DogbreedError, match=r"in use by another program; deploy with --port N, or --port 0"):
            deploy(backend, stub_model_dir)
    assert backend.workspace.ledger.get("endpoint", "stubby", "local") is None


def test_a_model_that_fails_to_load_reports_the_log(tmp_path, stub_model_dir):
    handler = stub_model_dir / "code" / "inference.py"
    handler.write_text(handler.read_text().replace("return Path(model_dir)", "raise RuntimeError('weights are corrupt')"))
    backend = backend_for(tmp_path)
    with pytest.raises(DogbreedError, match="weights are corrupt") as raised:
        deploy(backend, stub_model_dir)
    assert "exited with code 1 while loading" in str(raised.value)
    # One line naming the log, not the server's traceback (#15 item 7).
    assert len(str(raised.value).splitlines()) == 1 and "server.log" in str(raised.value)
    assert "Traceback" not in str(raised.value) and 'File "' not in str(raised.value)
    # Recorded while it loaded (intent first), and closed when it failed: nothing live is left.
    assert backend.workspace.ledger.get("endpoint", "stubby", "local").state == "gone"
    assert status_step.status(backend.config, backend.workspace.ledger, {"local": backend}).resources == []


def test_dry_run_plans_and_starts_nothing(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path, ttl="30m")
    result = deploy_step.deploy(backend.config, backend, backend.workspace.ledger, str(stub_model_dir), dry_run=True)
    plan = result.to_json()
    assert plan["dry_run"] is True and plan["endpoint"] == "stubby"
    assert plan["plan"]["command"][1:3] == ["-m", "dogbreed.serving"]
    assert plan["plan"]["ttl"] == "30m" and plan["plan"]["model_dir"] == str(stub_model_dir.resolve())
    assert backend.workspace.ledger.get("endpoint", "stubby", "local") is None
    assert not (backend.workspace.root / "endpoints").exists()


def test_no_wait_returns_while_creating_and_status_catches_up(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path, ttl="10m")
    info = deploy(backend, stub_model_dir, wait=False)
    assert info.state == "creating" and info.url
    ledger = backend.workspace.ledger
    assert ledger.get("endpoint", "stubby", "local").state == "creating"
    wait_until(lambda: backend.describe_endpoint("stubby").state == "in-service", "the model to load")
    (row,) = status_step.status(backend.config, ledger, {"local": backend}).resources
    assert row["state"] == "in-service" and ledger.get("endpoint", "stubby", "local").state == "in-service"
    backend.delete_endpoint("stubby")


DOGBREED = str(Path(sys.executable).parent / "dogbreed")
SLOW_MODEL_FN = """
def model_fn(model_dir):
    model_dir = Path(model_dir)
    (model_dir / "loading").touch()
    for _ in range(12000):  # at most 120 s
        if (model_dir / "go").exists():
            break
        time.sleep(0.01)
    return model_dir
"""


def test_kill_9_of_deploy_while_the_model_loads_leaves_nothing_the_ledger_does_not_know(tmp_path, stub_model_dir):
    """Issue 15 (the ledger loses track): the endpoint was recorded only once /ping answered,
    so a deploy killed while the model loaded left a server that status did not list and
    teardown --all did not find. Intent is recorded first (creating, pid, port)."""
    handler = stub_model_dir / "code" / "inference.py"
    original = handler.read_text()
    handler.write_text(original.replace("\ndef model_fn(model_dir):\n    return Path(model_dir)\n", SLOW_MODEL_FN))
    assert handler.read_text() != original
    config = tmp_path / "deploy.yaml"
    config.write_text(f"workspace: {tmp_path / '.dogbreed'}\ndeploy:\n  port: 0\n  endpoint_name: stubby\n  ttl: 10m\n")
    cli = subprocess.Popen(
        [DOGBREED, "deploy", "--model", str(stub_model_dir), "--trust-code", "-c", str(config), "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (stub_model_dir / "loading").exists(), "the server to load the model")
    finally:
        cli.kill()
        cli.wait()
    (server,) = servers_under(tmp_path)
    (stub_model_dir / "go").touch()

    status = dogbreed_cli("status", "-c", str(config), "--json")
    assert status.returncode == 0, status.stderr
    rows = [(r["kind"], r["name"], r["state"]) for r in json.loads(status.stdout)["resources"]]
    assert rows in ([("endpoint", "stubby", "creating")], [("endpoint", "stubby", "in-service")])
    teardown = dogbreed_cli("teardown", "--all", "--yes", "-c", str(config), "--json")
    assert teardown.returncode == 0, teardown.stderr
    assert json.loads(teardown.stdout)["deleted"] == ["stubby"]
    wait_until(lambda: not is_alive(server), "the server to stop")


def test_two_deploys_of_one_name_at_once_leave_one_server_and_the_ledger_names_it(tmp_path, stub_model_dir):
    backend = backend_for(tmp_path, ttl="10m")
    outcomes: list = []

    def run() -> None:
        try:
            outcomes.append(deploy(backend, stub_model_dir))
        except DogbreedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Before the lock, both succeeded and the loser's server ran on unrecorded.
    record = backend.workspace.ledger.get("endpoint", "stubby", "local")
    assert servers_under(tmp_path) == [record.meta["pid"]]
    refused = [o for o in outcomes if isinstance(o, DogbreedError)]
    assert all("a deploy of endpoint stubby is already running (pid " in str(o) for o in refused)
    backend.delete_endpoint("stubby")


def test_a_deploy_while_another_holds_the_name_is_refused_and_starts_nothing(tmp_path, stub_model_dir):
    from dogbreed.job_lock import JobLock

    backend = backend_for(tmp_path, ttl="10m")
    lock = JobLock(backend.workspace.root / "locks" / "deploy-local-stubby.lock", "a deploy of endpoint stubby")
    with lock.hold():
        with pytest.raises(DogbreedError) as raised:
            deploy(backend, stub_model_dir)
    assert str(raised.value) == (
        f"a deploy of endpoint stubby is already running (pid {os.getpid()}); "
        "wait for it to end, then deploy again (`dogbreed status` shows the endpoint)"
    )
    assert servers_under(tmp_path) == [] and backend.workspace.ledger.get("endpoint", "stubby", "local") is None
    assert deploy(backend, stub_model_dir).state == "in-service"  # the lock went with its holder
    backend.delete_endpoint("stubby")
