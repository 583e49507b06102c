"""`make run` from a fresh clone: a virtualenv, requirements.txt, `flask db upgrade`, and the app
answering on its port with SQLite, local files and the offline provider.

Slow and not self-contained: `make` creates `.venv` and installs requirements.txt with pip from
whatever index pip is set up to use (the internet, by default). So it runs only with RUN_SLOW=1
(`.ci/run` sets it, as CI installs packages anyway) and skips with one line otherwise; with
RUN_SLOW=1, a missing git or make, or a folder that is not a git checkout, fails it. It clones
the committed HEAD, as a user gets it: uncommitted changes are not in it. Each step is bounded,
so it cannot hang CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import requests

from tests.deploy import ROOT, free_port
from tests.realparts import require

START_TIMEOUT = 480  # seconds for the virtualenv, the install, the migration and the start


@pytest.fixture
def clone(tmp_path):
    if os.environ.get("RUN_SLOW") != "1":
        pytest.skip("slow (installs requirements.txt into a fresh .venv): set RUN_SLOW=1")
    for command in ("git", "make"):  # asked for with RUN_SLOW=1: missing is a failure
        require(shutil.which(command) is not None, f"{command} is not installed", "RUN_SLOW")
    require((ROOT / ".git").exists(), "not a git checkout: nothing to clone", "RUN_SLOW")
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)],
                   check=True, capture_output=True, timeout=120)
    return target


def test_make_run_answers_on_its_port_from_a_fresh_clone(clone, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {name: value for name, value in os.environ.items()
           if name not in ("VIRTUAL_ENV", "PYTHONPATH", "FLASK_APP", "MAKEFLAGS")}
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=clone, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = wait_for_health(url, process, log_path)
        assert health["status"] == "ok", health
        page = requests.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and 'id="generate-form"' in page.text
        response = requests.post(f"{url}/api/generate", timeout=120, json={
            "prompt": "a first picture", "width": 512, "height": 512})
        assert response.status_code == 201, response.text
        record = response.json()
        assert record["provider"] == "offline"
        assert (clone / "static" / "images" / record["filename"]).is_file()
        assert (clone / "instance" / "app.db").is_file()
    finally:
        stop_group(process)


def wait_for_health(url: str, process: subprocess.Popen, log_path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make run exited with {process.returncode}:\n"
                                 f"{log_path.read_text(errors='replace')[-3000:]}")
        try:
            response = requests.get(f"{url}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"nothing answered on {url} after {START_TIMEOUT} s:\n"
                         f"{log_path.read_text(errors='replace')[-3000:]}")


def stop_group(process: subprocess.Popen) -> None:
    """Stop make and what it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    else:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the server, should make have gone first
        except ProcessLookupError:
            pass
