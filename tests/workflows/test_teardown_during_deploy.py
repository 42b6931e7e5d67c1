"""`teardown` while a `deploy` of the same endpoint runs: it used to delete the endpoint under
the deploy, which could then report it in service at a URL where nothing ran. Teardown takes
the deploy's lock of the name: it waits for the deploy to end (a local one takes seconds) and
deletes what it made, and a deploy still running after that is named, its endpoint left alone."""

from __future__ import annotations

import json
import os

import pytest

from dogbreed.processes import is_alive
from dogbreed.workflows.deploy import deploy_lock
from tests.conftest import error_line

pytestmark = pytest.mark.slow


def test_teardown_leaves_an_endpoint_a_deploy_still_holds_and_names_the_deploy(tune_env):
    tune_env.write_config(train={"epochs": 1}, deploy={"endpoint_name": "racing", "port": 0})
    assert tune_env.cli("train", "--name", "served").returncode == 0
    deployed = tune_env.cli("deploy", "--json")
    assert deployed.returncode == 0, deployed.stderr
    try:
        pid = tune_env.ledger.get("endpoint", "racing", "local").meta["pid"]
        with deploy_lock(tune_env.ledger, "local", "racing").hold():  # a redeploy of it, running
            busy = tune_env.cli("teardown", "--all", "--yes", "--json")

        assert busy.returncode == 1
        assert error_line(busy.stderr) == (
            f"error: endpoint racing not deleted: a deploy of endpoint racing is already running (pid {os.getpid()}); "
            "run teardown again once it ends"
        )
        assert json.loads(busy.stdout)["deleted"] == []
        assert is_alive(pid) and tune_env.ledger.get("endpoint", "racing", "local").state == "in-service"

        done = tune_env.cli("teardown", "--all", "--yes", "--json")  # the deploy has ended
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["deleted"] == ["racing"]
        assert tune_env.ledger.get("endpoint", "racing", "local").state == "deleted"
    finally:
        tune_env.cli("teardown", "--all", "--yes")
