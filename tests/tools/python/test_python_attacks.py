"""Hostile programs against the real Docker sandbox: each tries to reach the host, break the
session or outlive its kernel, and must fail with the session still working."""

from __future__ import annotations

import os
import time

import pytest

from tools.python import PythonSession

pytestmark = pytest.mark.docker


def _tree(folder) -> dict[str, str]:
    """Every entry under `folder` (links not followed) and what it is."""
    kinds = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            kind = "link" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
            kinds[os.path.relpath(path, folder)] = kind
    return kinds


def test_links_planted_in_mnt_data_never_lead_host_writes_outside_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    existing = outside / "existing.png"
    existing.write_bytes(b"host file")
    stat_before = existing.stat()
    data = tmp_path / "data"
    with PythonSession(data_dir=data) as py:
        out = py.run(
            "import os\n"
            f"os.symlink({str(outside / 'created.svg')!r}, '/mnt/data/figure_1.svg')\n"
            f"os.symlink({str(existing)!r}, '/mnt/data/figure_1.png')\n"
            f"os.symlink({str(outside)!r}, '/mnt/data/folder')\n"
            f"os.symlink({str(outside / 'synced.txt')!r}, '/mnt/data/synced.txt')\n"
            "os.mkfifo('/mnt/data/fifo')\n"
            "from IPython.display import display\n"
            "display({'image/svg+xml': '<svg/>'}, raw=True)\n"
            "display({'image/png': 'iVBORw0KGgo='}, raw=True)"
        )
        # Taken names are skipped; the links stay links, pointing nowhere in the sandbox.
        assert out == (
            "[image/svg+xml saved to /mnt/data/figure_2.svg]\n"
            "[image/png saved to /mnt/data/figure_2.png]\n"
        )
        out = py.run("sorted((n, os.path.islink(n)) for n in os.listdir())")
        assert "('figure_1.png', True),\n ('figure_1.svg', True)" in out
        assert "('figure_2.png', False),\n ('figure_2.svg', False)" in out
        skipped = py.sync_data()
    assert sorted(os.listdir(outside)) == ["existing.png"]
    assert existing.read_bytes() == b"host file"
    assert (existing.stat().st_uid, existing.stat().st_mode) == (
        stat_before.st_uid,
        stat_before.st_mode,
    )
    # Only regular files come back to the host: no link, no fifo.
    assert _tree(data) == {"figure_2.png": "file", "figure_2.svg": "file"}
    assert (data / "figure_2.svg").read_text() == "<svg/>"
    assert "./folder (not a regular file)" in skipped


def test_the_local_backend_never_writes_a_figure_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    data = tmp_path / "data"
    data.mkdir()
    (data / "figure_1.svg").symlink_to(victim)
    with (
        pytest.warns(UserWarning),
        PythonSession(backend="local", data_dir=data, timeout=10) as py,
    ):
        out = py.run(
            "from IPython.display import display\ndisplay({'image/svg+xml': '<svg/>'}, raw=True)"
        )
    assert out == f"[image/svg+xml saved to {data / 'figure_2.svg'}]\n"
    assert not victim.exists()


def test_what_the_code_tries_in_run_kernel_never_breaks_the_session(owned_containers):
    session = PythonSession(timeout=10).start()
    kernel_root = session._backend._root
    out = session.run(
        "import os\n"
        "for attempt in (lambda: os.mkdir('/run/kernel/kzz'),\n"
        "                lambda: os.symlink('/etc', '/run/kernel/link'),\n"
        "                lambda: os.mkfifo('/run/kernel/fifo'),\n"
        "                lambda: open('/run/kernel/fill', 'wb').write(b'x' * 10**6),\n"
        "                lambda: os.chmod('/run/kernel', 0o777),\n"
        "                lambda: os.remove('/run/kernel/kernel.json')):\n"
        "    try:\n"
        "        attempt()\n"
        "        print('done')\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert out == "PermissionError\n" * 6
    out = session.run("import os; os._exit(1)")
    assert "The kernel was restarted" in out
    assert session.run("6 * 7") == "42\n"
    session.close()
    assert not kernel_root.exists()
    assert owned_containers() == []


def test_a_thread_bomb_restarts_the_kernel_and_says_so(sandbox_image):
    with PythonSession(timeout=5, interrupt_grace=1, pids_limit=32) as session:
        session.run("kept = 1")
        out = session.run(
            "import threading\n"
            "stop = threading.Event()\n"
            "while True:\n"
            "    threading.Thread(target=stop.wait, daemon=True).start()"
        )
        assert out.endswith(
            "[Execution failed: the code filled the sandbox's limit of 32 processes and threads. "
            "The kernel was restarted: all variables and imports are lost; files in /mnt/data "
            "are kept.]"
        )
        assert session.run("import threading; threading.Thread(target=print).start()") == "\n"
        assert "NameError" in session.run("kept")


def test_code_planted_in_mnt_data_never_becomes_the_next_kernel(tmp_path):
    data = tmp_path / "data"
    planted = (
        "open('/mnt/data/hijacked', 'w').write(__name__)\nraise SystemExit('not the real one')\n"
    )
    with PythonSession(data_dir=data, timeout=20) as py:
        for name in ("ipykernel_launcher.py", "numpy.py", "sitecustomize.py", "IPython.py"):
            py.run(f"open('/mnt/data/{name}', 'w').write({planted!r})")
        assert "The kernel was restarted" in py.run("import os; os._exit(1)")
        out = py.run(
            "import os, sys, numpy\n"
            "print(os.getcwd(), '' in sys.path, numpy.__file__.startswith('/usr/'),"
            " os.path.exists('/mnt/data/hijacked'))"
        )
        assert out == "/mnt/data False True False\n"
    # The planted files persist in the user's folder; a later session is not taken over.
    assert (data / "ipykernel_launcher.py").exists()
    with PythonSession(data_dir=data, timeout=20) as later:
        assert later.run("import numpy; numpy.__file__.startswith('/usr/')") == "True\n"
    assert not (data / "hijacked").exists()


@pytest.fixture
def small_quota(tmp_path):
    with PythonSession(data_size="8m", timeout=20, data_dir=tmp_path / "data") as session:
        yield session


def test_writing_past_the_quota_is_a_clear_error_and_the_session_goes_on(small_quota, tmp_path):
    out = small_quota.run("open('/mnt/data/big', 'wb').write(b'x' * (16 << 20))")
    assert "OSError: [Errno 28] No space left on device" in out
    assert small_quota.run("import os; os.remove('/mnt/data/big'); 6 * 7") == "42\n"
    assert small_quota.run("open('/mnt/data/small', 'wb').write(b'y' * 1000)") == "1000\n"
    assert "No space left" in small_quota.run("open('fill', 'wb').write(b'x' * (9 << 20))")
    out = small_quota.run("import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()")
    assert out.startswith("[image/png not saved: /mnt/data is full (quota 8m)]")


def test_a_sparse_file_larger_than_the_quota_never_reaches_the_host(tmp_path):
    data = tmp_path / "data"
    with PythonSession(data_size="8m", data_dir=data, timeout=20) as py:
        out = py.run(
            "with open('/mnt/data/sparse', 'wb') as f:\n"
            "    f.truncate(1 << 40)\n"
            "open('/mnt/data/real', 'wb').write(b'r' * 1000)"
        )
        assert out == "1000\n"
        start = time.monotonic()
        skipped = py.sync_data()
        assert time.monotonic() - start < 10
    assert any(s.startswith("./sparse (1099511627776 bytes, past the quota)") for s in skipped)
    assert sorted(os.listdir(data)) == ["real"]


def test_programs_written_to_mnt_data_cannot_be_run(small_quota):
    out = small_quota.run(
        "import os, shutil, subprocess\n"
        "shutil.copy('/bin/true', '/mnt/data/t'); os.chmod('/mnt/data/t', 0o755)\n"
        "subprocess.run(['/mnt/data/t'])"
    )
    assert "PermissionError: [Errno 13] Permission denied: '/mnt/data/t'" in out
    out = small_quota.run(
        "open('/mnt/data/s.py', 'w').write('print(6 * 7)')\n"
        "print(subprocess.run(['python3', '/mnt/data/s.py'], capture_output=True).stdout)"
    )
    assert out == "b'42\\n'\n"


def test_a_user_folder_comes_in_at_start_and_back_on_close(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "input.csv").write_text("a,b\n1,2\n")
    (data / "sub" / "notes.txt").write_text("notes")
    (data / "link").symlink_to(tmp_path)
    with PythonSession(data_dir=data, timeout=20) as py:
        out = py.run(
            "import os\n"
            "print(open('input.csv').read(), open('sub/notes.txt').read(),"
            " os.path.exists('link'))\n"
            "open('input.csv', 'a').write('3,4\\n'); os.remove('sub/notes.txt')\n"
            "open('sub/new.txt', 'w').write('new')"
        )
        assert out == "a,b\n1,2\n notes False\n3\n"
    assert (data / "input.csv").read_text() == "a,b\n1,2\n3,4\n"
    assert (data / "sub" / "new.txt").read_text() == "new"
    assert (data / "sub" / "notes.txt").read_text() == "notes"  # deletions are not copied
    assert (data / "link").is_symlink()


def test_a_user_folder_larger_than_the_quota_is_refused_up_front(tmp_path):
    from tools.python import SandboxError

    data = tmp_path / "data"
    data.mkdir()
    (data / "big").write_bytes(b"x" * (2 << 20))
    with pytest.raises(SandboxError, match=r"raise SandboxConfig\.data_size"):
        PythonSession(data_size="1m", data_dir=data).start()
    assert (data / "big").stat().st_size == 2 << 20


def test_code_planted_in_the_local_data_folder_never_becomes_the_next_kernel(tmp_path):
    planted = "open('hijacked', 'w').write(__name__)\nraise SystemExit('not the real one')\n"
    for name in ("ipykernel_launcher.py", "numpy.py"):
        (tmp_path / name).write_text(planted)
    with (
        pytest.warns(UserWarning),
        PythonSession(backend="local", data_dir=tmp_path, timeout=20) as py,
    ):
        assert "The kernel was restarted" in py.run("import os; os._exit(1)")
        out = py.run("import os, numpy\nprint(os.getcwd(), numpy.__file__.startswith(os.getcwd()))")
        assert out == f"{tmp_path} False\n"
    assert not (tmp_path / "hijacked").exists()


def test_many_empty_files_or_a_deep_tree_stay_within_bounds(tmp_path):
    data = tmp_path / "data"
    with PythonSession(data_size="8m", data_dir=data, timeout=30) as py:
        out = py.run(
            "import os\n"
            "try:\n"
            "    for i in range(5000):\n"
            "        open(f'/mnt/data/empty{i}', 'w').close()\n"
            "except OSError as exc:\n"
            "    print(i, exc.strerror)"
        )
        count, reason = out.split(" ", 1)
        assert 1000 <= int(count) < 5000 and reason == "No space left on device\n"
        py.run("for i in range(5000):\n    os.path.exists(f'empty{i}') and os.remove(f'empty{i}')")
        out = py.run(
            "deep = '/'.join(['d'] * 1000)\nos.makedirs(deep); open(deep + '/f', 'w').write('deep')"
        )
        assert out == "4\n"
        skipped = py.sync_data()
    assert skipped[-1].endswith("/d/f (deeper than 64 folders)")
    assert data.joinpath(*["d"] * 64).is_dir()
    assert not data.joinpath(*["d"] * 65).exists()
