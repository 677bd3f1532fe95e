"""Sessions apart from each other, and containers that never outlive their owner."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docker.models.containers import ContainerCollection

from tools.python import PythonSession
from tools.python.docker_backend import (
    OWNER_HOST_LABEL,
    OWNER_PID_LABEL,
    SANDBOX_LABEL,
    remove_stale,
)

pytestmark = pytest.mark.docker


def test_sessions_do_not_see_each_other(sandbox_image):
    async def scenario():
        async with PythonSession(timeout=5) as a, PythonSession(timeout=5) as b:
            await a.arun("secret = 1\nopen('/mnt/data/a.txt', 'w').write('a')")
            assert "NameError: name 'secret' is not defined" in await b.arun("secret")
            assert await b.arun("import os; os.listdir('/mnt/data')") == "[]\n"
            assert a.data_dir != b.data_dir
            assert await asyncio.to_thread(a.sync_data) == []
            assert sorted(p.name for p in a.data_dir.iterdir()) == ["a.txt"]
            # One session's long execution does not hold up the other.
            start = time.monotonic()
            outs = await asyncio.gather(
                a.arun("import time; time.sleep(1); 'a'"),
                b.arun("import time; time.sleep(1); 'b'"),
            )
            assert outs == ["'a'\n", "'b'\n"]
            assert time.monotonic() - start < 1.9

    asyncio.run(scenario())


def test_close_removes_the_container_and_its_own_data_folder(owned_containers, tmp_path):
    session = PythonSession().start()
    kept = PythonSession(data_dir=tmp_path / "data").start()
    assert len(owned_containers()) == 4  # a kernel and a /mnt/data holder each
    data_dir = session.data_dir
    kept.run("open('/mnt/data/result.txt', 'w').write('keep me')")
    session.close()
    kept.close()
    session.close()  # twice is fine
    assert owned_containers() == []
    assert not data_dir.exists()
    assert (tmp_path / "data" / "result.txt").read_text() == "keep me"


def test_restart_replaces_the_container(owned_containers):
    def kernels():
        return [c for c in owned_containers() if c.name.startswith("oss-agent-python-")]

    with PythonSession() as session:
        [before] = kernels()
        session.run("import os; os._exit(1)")
        [after] = kernels()
        assert after.id != before.id


def _labels(pid: int) -> dict[str, str]:
    return {SANDBOX_LABEL: "1", OWNER_PID_LABEL: str(pid), OWNER_HOST_LABEL: socket.gethostname()}


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_stale_containers_and_volumes_of_dead_owners_are_removed(docker_client, sandbox_image):
    dead = _labels(_dead_pid())
    stale = docker_client.containers.create(sandbox_image, ["true"], labels=dead)
    stale_volume = docker_client.volumes.create(labels=dead)
    ours = docker_client.containers.create(sandbox_image, ["true"], labels=_labels(os.getpid()))
    try:
        removed = remove_stale(docker_client)
        assert stale.name in removed and stale_volume.name in removed
        names = [c.name for c in docker_client.containers.list(all=True)]
        assert stale.name not in names
        assert stale_volume.name not in [v.name for v in docker_client.volumes.list()]
        assert ours.name in names  # its owner (this process) is alive
    finally:
        ours.remove(force=True)


def test_cleanup_skips_a_sandbox_its_live_owner_removes_meanwhile(
    docker_client, sandbox_image, monkeypatch
):
    """Listing containers inspects each one; another process closing its session in between
    must not fail this one's start (three evals at once hit it in 27 of 600 samples)."""
    other = docker_client.containers.create(sandbox_image, ["true"], labels=_labels(os.getppid()))
    inspect = ContainerCollection.get

    def closed_meanwhile(self, container_id, *args, **kwargs):
        if container_id == other.id:
            other.remove(force=True)
        return inspect(self, container_id, *args, **kwargs)

    monkeypatch.setattr(ContainerCollection, "get", closed_meanwhile)
    assert other.name not in remove_stale(docker_client)


def test_a_process_that_exits_without_closing_leaves_nothing_behind(docker_client, sandbox_image):
    code = (
        "from tools.python import PythonSession\n"
        "session = PythonSession().start()\n"
        "print(session.data_dir)\n"
        "print(session.run('6 * 7'), end='')\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    stdout, _ = child.communicate(timeout=120)
    data_dir, answer = stdout.splitlines()
    assert (child.returncode, answer) == (0, "42")
    assert not Path(data_dir).exists()
    label = f"{OWNER_PID_LABEL}={child.pid}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []


def test_what_a_killed_owner_leaves_is_removed_by_the_next_process(docker_client, sandbox_image):
    code = (
        "import os, sys, time\n"
        "from tools.python import PythonSession\n"
        "session = PythonSession().start()\n"
        "print(session.data_dir, session._backend._root, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    folders = [Path(p) for p in child.stdout.readline().split()]
    child.kill()
    child.wait()
    child.stdout.close()
    assert all(folder.exists() for folder in folders)
    removed = remove_stale(docker_client)
    assert sorted(str(f) for f in folders) == sorted(r for r in removed if r.startswith("/"))
    assert not any(folder.exists() for folder in folders)
    label = {"label": f"{OWNER_PID_LABEL}={child.pid}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.volumes.list(filters=label) == []
