"""PythonSession against the real Docker sandbox: state, isolation, output, faults."""

from __future__ import annotations

import time

import pytest

from tools.python import PythonSession

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def py(sandbox_image):
    """One session shared by the tests that leave its kernel alive."""
    with PythonSession(timeout=3, max_output_chars=2000) as session:
        yield session


def test_state_persists_across_calls(py):
    assert py.run("x = 21") == ""
    assert py.run("x * 2") == "42\n"
    assert py.run("def f(n):\n    return n + x\nprint(f(1))") == "22\n"


def test_scientific_stack_and_figures_go_to_mnt_data(sandbox_image):
    # Its own session: the first import of the whole stack can take seconds on a busy host.
    with PythonSession(timeout=60) as py:
        out = py.run(
            "import numpy, scipy, sympy, pandas\n"
            "import matplotlib.pyplot as plt\n"
            "plt.plot([1, 2, 3]); plt.show()"
        )
        assert out.startswith("[image/png saved to /mnt/data/figure_")
        name = out.split("/mnt/data/")[1].split("]")[0]
        assert py.sync_data() == []
        assert (py.data_dir / name).read_bytes().startswith(b"\x89PNG")
        assert py.run(f"import os; os.path.getsize('/mnt/data/{name}') > 0") == "True\n"


def test_errors_come_back_as_plain_tracebacks(py):
    out = py.run("1 / 0")
    assert "ZeroDivisionError: division by zero" in out
    assert "\x1b[" not in out


def test_escape_sequences_never_reach_the_model(py):
    # Clipboard write, screen clear, title, colour, bell, 8-bit CSI, bidi override.
    out = py.run(
        "print('\\x1b]52;c;cHduZWQ=\\x07\\x1b[2Jclear\\x1b]0;title\\x1b\\\\ \\x1b[31mred"
        "\\x1b[0m\\x07\\x9b2J\\u202e.')"
    )
    assert out == "clear red\u2407\ufffd.\n"


def test_output_keeps_its_head_and_tail_with_a_note(py):
    out = py.run("print('a' * 2000 + 'b' * 3000)")
    assert out == (
        "a" * 1000
        + "\n[... 3001 characters truncated; print less, or write large results to a file ...]\n"
        + "b" * 999
        + "\n"
    )


def test_no_network(py):
    out = py.run("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)")
    assert "Network is unreachable" in out
    assert py.run("import os; sorted(os.listdir('/sys/class/net'))") == "['lo']\n"


def test_root_filesystem_is_read_only(py):
    assert "Read-only file system: '/etc/oss-agent'" in py.run("open('/etc/oss-agent', 'w')")
    assert "Read-only file system: '/x'" in py.run("open('/x', 'w')")
    assert "Read-only file system" in py.run("open('/usr/lib/python3/x.py', 'w')")


def test_only_tmp_and_mnt_data_are_writable_and_mnt_data_reaches_the_host(py):
    out = py.run("open('/tmp/t', 'w').write('t'), open('d.txt', 'w').write('data')")
    assert out == "(1, 4)\n"
    assert py.sync_data() == []
    assert (py.data_dir / "d.txt").read_text() == "data"


def test_tmp_is_noexec(py):
    out = py.run(
        "import os, subprocess\n"
        "open('/tmp/s.sh', 'w').write('#!/bin/sh\\necho ran')\n"
        "os.chmod('/tmp/s.sh', 0o755)\n"
        "subprocess.run(['/tmp/s.sh'])"
    )
    assert "PermissionError: [Errno 13] Permission denied: '/tmp/s.sh'" in out


def test_unprivileged_user_without_capabilities(py):
    assert py.run("import os; os.getuid() != 0 and os.getgid() != 0") == "True\n"
    status = py.run("print(open('/proc/self/status').read())")
    assert "CapEff:\t0000000000000000" in status
    assert "CapPrm:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status
    assert "PermissionError" in py.run("open('/etc/shadow').read()")


def test_timeout_interrupts_and_keeps_state(py):
    py.run("kept = 'yes'")
    start = time.monotonic()
    out = py.run("while True:\n    pass")
    assert time.monotonic() - start < 6
    assert "KeyboardInterrupt" in out
    assert out.endswith(
        "[Execution timed out after 3 seconds and was interrupted; variables and imports are kept.]"
    )
    assert py.run("kept") == "'yes'\n"


def test_infinite_print_is_truncated_and_timed_out(py):
    start = time.monotonic()
    out = py.run("while True:\n    print('spam')")
    assert time.monotonic() - start < 6
    assert out.startswith("spam\nspam\n")
    assert "characters truncated; print less" in out
    assert "KeyboardInterrupt" in out
    assert out.endswith("was interrupted; variables and imports are kept.]")
    assert len(out) < 2500
    assert py.run("1 + 1") == "2\n"


@pytest.fixture
def fragile(sandbox_image):
    """A session for faults that cost the kernel: short limits so each ends fast."""
    with PythonSession(timeout=1.5, interrupt_grace=1, memory="128m", pids_limit=32) as session:
        yield session


def test_uninterruptible_code_restarts_the_kernel(fragile):
    fragile.run("lost = 1")
    start = time.monotonic()
    out = fragile.run(
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(10)\n"
        "    except KeyboardInterrupt:\n"
        "        pass"
    )
    assert time.monotonic() - start < 10
    assert out == (
        "[Execution timed out after 1.5 seconds and did not stop when interrupted. The kernel "
        "was restarted: all variables and imports are lost; files in /mnt/data are kept.]"
    )
    assert "NameError: name 'lost' is not defined" in fragile.run("lost")


def test_kernel_exit_and_segfault_restart_the_kernel(fragile):
    fragile.run("open('/mnt/data/survives', 'w').write('1'); lost = 1")
    out = fragile.run("print('before', flush=True)\nimport os\nos._exit(3)")
    assert out.endswith(
        "[Execution failed: the kernel exited with code 3. The kernel was restarted: all "
        "variables and imports are lost; files in /mnt/data are kept.]"
    )
    assert "NameError" in fragile.run("lost")
    assert fragile.run("open('/mnt/data/survives').read()") == "'1'\n"
    out = fragile.run("import ctypes\nctypes.string_at(0)")
    assert out.startswith("[Execution failed: the kernel was killed by SIGSEGV.")
    assert fragile.run("6 * 7") == "42\n"


def test_memory_bomb_is_reported_as_out_of_memory(fragile):
    out = fragile.run("hog = b'x' * (512 * 1024 * 1024)")
    assert out.startswith("[Execution failed: the kernel ran out of memory (limit 128m).")
    assert "The kernel was restarted" in out
    assert fragile.run("6 * 7") == "42\n"


def test_fork_bomb_ends_fast_and_leaves_nothing_running(sandbox_image):
    with PythonSession(timeout=1.5, interrupt_grace=1, memory="1g", pids_limit=32) as session:
        start = time.monotonic()
        out = session.run("import os\nwhile True:\n    os.fork()")
        assert time.monotonic() - start < 15
        assert "The kernel was restarted: all variables and imports are lost" in out
        # Only the container's init and the new kernel are left.
        count = "import os; len([p for p in os.listdir('/proc') if p.isdigit()])"
        assert session.run(count) == "2\n"


def test_network_is_opt_in(sandbox_image):
    with PythonSession(network=True) as session:
        out = session.run("import os; 'eth0' in os.listdir('/sys/class/net')")
    assert out == "True\n"


def test_malformed_messages_the_code_sends_itself_are_dropped(py):
    # The code runs in the kernel and holds its key: it can publish anything on iopub.
    out = py.run(
        "k = get_ipython().kernel\n"
        "parent = k.get_parent('shell')\n"
        "for kind, content in [\n"
        "    ('stream', {'name': 'stdout', 'text': 5}), ('stream', {}), ('error', {}),\n"
        "    ('error', {'ename': 1, 'traceback': [1, None]}), ('display_data', {'data': 'x'}),\n"
        "    ('execute_result', {'data': {'image/png': 5}}), ('status', {}),\n"
        "    ('display_data', {'data': {'text/plain': ['a']}}),\n"
        "]:\n"
        "    k.session.send(k.iopub_socket, kind, content, parent=parent)\n"
        "print('sent')"
    )
    assert "[a malformed message from the kernel was dropped]" in out
    assert "[image/png not saved: the data is not a valid png image]" in out
    assert out.endswith("sent\n")
    assert py.run("6 * 7") == "42\n"
