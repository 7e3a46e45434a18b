"""Hostile programs: each one is contained, gets the right verdict, and leaves the host untouched."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mimo_lite.tasks import sandbox
from mimo_lite.tasks.sandbox import SANDBOX_UIDS, WORKERS, Limits, containment, run_tests

FAST = Limits(cpu_s=1, wall_s=2.0, memory_mb=256, output_kb=64)
RETURNS_FOUR = {"code": "assert f() == 4"}


def run_one(program: str, test: dict = RETURNS_FOUR, limits: Limits = FAST):
    [result] = run_tests(textwrap.dedent(program), [test], limits)
    return result


def sandboxed() -> dict[int, tuple[int, int]]:
    """Processes running under a sandbox uid (only when run as root): pid -> (uid, parent pid)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status)
        except (OSError, ValueError):
            continue
        uid, parent = int(fields["Uid"].split()[0]), int(fields["PPid"])
        if uid in SANDBOX_UIDS:
            found[int(pid)] = (uid, parent)
    return found


def sandbox_processes() -> list[int]:
    """Processes still running under a sandbox uid (only meaningful when run as root)."""
    return sorted(sandboxed())


def lasting(find) -> list:
    """What `find()` still returns once every program that another test process may be running
    has reached its time limit (pytest-xdist runs the notebooks beside this module, and their
    sandboxes use the same range of uids and temporary folder): the default wall limit and 2 s."""
    deadline = time.monotonic() + Limits().wall_s + 2
    found = find()
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = [each for each in find() if each in found]
    return found


def test_a_good_program_passes_and_the_layers_are_reported():
    assert run_one("def f():\n    return 4\n").passed
    assert "landlock-files" in containment() or "unprivileged-uid" in containment()


def test_infinite_loop_is_a_timeout():
    result = run_one("while True:\n    pass\n")
    assert result.status == "timeout"
    assert result.time_s < FAST.wall_s + 1


def test_sleeping_past_the_wall_limit_is_a_timeout():
    result = run_one("import time\ntime.sleep(60)\n")
    assert result.status == "timeout" and "wall-clock" in result.detail
    assert 0.9 * FAST.wall_s <= result.time_s < FAST.wall_s + 1


def test_ignoring_sigterm_and_sigxcpu_does_not_help():
    result = run_one("""
        import signal
        for sig in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            pass
        """)
    assert result.status == "timeout"


def test_fork_bomb_cannot_fork_and_leaves_nothing_behind():
    result = run_one("""
        import os
        while True:
            os.fork()
        """)
    assert result.status == "runtime_error" and "BlockingIOError" in result.detail
    threads = run_one("import threading\nthreading.Thread(target=print).start()\n")
    assert threads.status == "runtime_error"
    if os.getuid() == 0:
        assert lasting(sandbox_processes) == []


@pytest.mark.skipif(os.getuid() != 0, reason="the sandbox switches uids only when run as root")
def test_two_kit_processes_never_run_sandboxes_under_one_uid(tmp_path):
    """Two processes grading at once (two pytest workers, the worker processes of a `Jobs` pool)
    run each sandbox under a uid that no sandbox of the other holds at that moment: watched in
    /proc."""
    go = tmp_path / "go"
    grade = ("import os, sys, time\nfrom mimo_lite.tasks.sandbox import WORKERS, Limits, run_tests\n"
             "open(sys.argv[1], 'w').close()\n"                   # imported: ready
             f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.01)\n"
             "run_tests('import time\\ntime.sleep(0.5)\\n', [{'input': '', 'output': ''}] * "
             "(3 * WORKERS), Limits(wall_s=4.0))\n")
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    kits = [subprocess.Popen([sys.executable, "-c", grade, str(path)]) for path in ready]
    both_seen, shared = 0, []
    try:
        deadline = time.monotonic() + 120
        while not all(path.exists() for path in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()                                   # both start grading together
        while any(kit.poll() is None for kit in kits):
            running = sandboxed()
            owners = {}                              # uid -> the kit processes running it
            for uid, parent in running.values():
                if parent in running:                # a test program's judge: its solution's
                    parent = running[parent][1]
                owners.setdefault(uid, set()).add(parent)
            kit_pids = {kit.pid for kit in kits}
            both_seen += kit_pids <= set().union(*owners.values())
            shared += [uid for uid, who in owners.items() if len(who & kit_pids) > 1]
            time.sleep(0.01)
    finally:
        for kit in kits:
            kit.kill()
            kit.wait()
    assert [kit.returncode for kit in kits] == [0, 0]
    assert both_seen >= 3, "the two processes' sandboxes never ran at the same time: no check"
    assert shared == [], f"uids held by sandboxes of both processes at once: {sorted(set(shared))}"


def test_uids_that_an_account_has_are_never_used(monkeypatch):
    def getpwuid(uid):
        if uid in (64001, 64003):
            return ("some-service", "x", uid)
        raise KeyError(uid)
    monkeypatch.setattr("pwd.getpwuid", getpwuid)
    uids = sandbox._unassigned_uids.__wrapped__()
    assert uids[:3] == (64000, 64002, 64004) and len(uids) == len(SANDBOX_UIDS) - 2


def test_a_lock_folder_that_others_may_open_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "uids"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)                              # anyone could take or fake a uid's lock
    monkeypatch.setattr(sandbox, "UID_LOCKS", folder)
    with pytest.raises(RuntimeError, match="no one else may open; it is not: remove it"):
        sandbox._uid_lock_folder()
    folder.rmdir()
    folder.symlink_to(tmp_path)                      # a link, even to a good folder
    with pytest.raises(RuntimeError, match="remove it"):
        sandbox._uid_lock_folder()


def test_memory_bomb_is_a_memory_limit():
    assert run_one("x = bytearray(10 ** 10)\n").status == "memory_limit"
    assert run_one("x = []\nwhile True:\n    x.append(' ' * 10 ** 6)\n").status == "memory_limit"


def test_huge_output_is_an_output_limit():
    result = run_one("while True:\n    print('x' * 1000)\n",
                     {"input": "", "output": "x"})
    assert result.status == "output_limit"
    assert run_one("open('big', 'w').write('y' * 10 ** 7)\n").status == "output_limit"


@pytest.fixture
def open_folder():
    """A folder every uid may enter and write: only the sandbox can keep a program out of it."""
    folder = Path(tempfile.mkdtemp(prefix="mimo-host-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def test_writing_or_deleting_files_outside_its_directory_fails(open_folder):
    folder = open_folder
    victim = folder / "keep.txt"
    victim.write_text("precious")
    victim.chmod(0o666)
    for attack in (f"open({str(folder / 'new.txt')!r}, 'w').write('x')",
                   f"open({str(victim)!r}, 'w').write('overwritten')",
                   f"import os\nos.remove({str(victim)!r})",
                   f"import os\nos.rename({str(victim)!r}, 'mine.txt')",
                   f"import shutil\nshutil.rmtree({str(folder)!r})"):
        result = run_one(attack + "\ndef f():\n    return 4\n")
        assert result.status == "runtime_error", attack
        assert "PermissionError" in result.detail, attack
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    # inside its own directory it may write
    assert run_one("open('scratch.txt', 'w').write('ok')\ndef f():\n    return 4\n").passed


def test_reading_other_files_fails(open_folder):
    secret = open_folder / "answers.jsonl"
    secret.write_text('{"expected": 4}')
    secret.chmod(0o644)
    for path in (secret, "/etc/hostname", f"/proc/{os.getpid()}/environ",
                 f"/proc/{os.getpid()}/cmdline"):
        result = run_one(f"data = open({str(path)!r}).read()\ndef f():\n    return data\n")
        assert result.status == "runtime_error", path
        assert "PermissionError" in result.detail, path
    listing = run_one("import os\nfiles = os.listdir('/')\ndef f():\n    return files\n")
    assert listing.status == "runtime_error"


def test_opening_a_network_connection_fails():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    port, udp_port = listener.getsockname()[1], udp.getsockname()[1]
    try:
        tcp = run_one(f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"leak")
            """)
        assert tcp.status == "runtime_error" and "Error" in tcp.detail
        datagram = run_one(f"""
            import socket
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"leak", ("127.0.0.1", {udp_port}))
            """)
        assert datagram.status == "runtime_error"
        with pytest.raises(BlockingIOError):
            listener.accept()
        with pytest.raises(BlockingIOError):
            udp.recv(16)
    finally:
        listener.close()
        udp.close()


signal_confined = pytest.mark.skipif(
    not {"unprivileged-uid", "landlock-signals"} & set(containment()),
    reason="signals are not confined on this machine (needs root or Landlock ABI 6)")


@signal_confined
def test_killing_its_parent_or_other_processes_fails():
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(True))
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        result = run_one("""
            import os, signal
            os.kill(os.getppid(), signal.SIGUSR1)
            """)
        assert result.status == "runtime_error" and "PermissionError" in result.detail
        assert run_one("import os\nos.kill(os.getppid(), 9)\n").status == "runtime_error"
        assert run_one(f"import os\nos.kill({bystander.pid}, 9)\n").status == "runtime_error"
        # kill(-1) reaches every process the caller may signal: here, only itself
        results = run_tests("import os\nos.kill(-1, 9)\n", [RETURNS_FOUR] * 2, FAST)
        assert {r.status for r in results} == {"runtime_error"}
        assert bystander.poll() is None
    finally:
        signal.signal(signal.SIGUSR1, previous)
        bystander.kill()
        bystander.wait()
    assert received == []


def test_exiting_early_with_success_does_not_pass():
    assert run_one("import sys\nsys.exit(0)\n").status == "runtime_error"
    assert run_one("import os\nos._exit(0)\n").status == "runtime_error"
    stdio = run_one("import os\nos._exit(0)\n", {"input": "2 2", "output": "4"})
    assert stdio.status == "wrong_answer"


def test_tampering_with_the_comparison_does_not_pass():
    always_equal = run_one("""
        class Anything:
            def __eq__(self, other):
                return True
        def f():
            return Anything()
        """)
    assert not always_equal.passed
    int_subclass = run_one("class Four(int):\n    def __eq__(self, o):\n        return True\n"
                           "def f():\n    return Four(5)\n")
    assert not int_subclass.passed
    patched = run_one("""
        import builtins, operator
        operator.eq = lambda a, b: True
        builtins.AssertionError = type("Never", (Exception,), {})
        def f():
            return 5
        """)
    assert patched.status == "wrong_answer"


def test_a_solution_cannot_find_the_expected_value():
    """It searches its whole process for the expected value; the value never entered it."""
    secret = 918273645
    attack = """
        import gc, os, sys
        def f():
            seen = []
            for obj in gc.get_objects():
                seen.append(repr(obj)[:10000])
            frame = sys._getframe()
            while frame:
                seen.append(repr(frame.f_locals)[:10000] + repr(frame.f_code.co_consts))
                frame = frame.f_back
            for fd in range(64):
                try:
                    os.lseek(fd, 0, 0)
                    seen.append(os.read(fd, 1 << 20).decode(errors="replace"))
                except OSError:
                    pass
            text = " ".join(seen)
            needle = "".join(["9182", "73645"])      # built after the search, never a constant
            return int(needle) if needle in text else -1
        """
    assert "918273645" not in attack
    result = run_one(attack, {"code": f"assert f() == {secret}"})
    assert result.status == "wrong_answer" and "gave -1" in result.detail, result
    stdio = run_one(textwrap.dedent(attack) + "print(f())\n", {"input": "", "output": str(secret)})
    assert stdio.status == "wrong_answer"


def test_forging_the_result_channel_gives_only_a_value():
    """Writing a fake result is no stronger than returning a value: the harness still compares."""
    forged = run_one("""
        import os
        for fd in range(3, 16):
            try:
                os.write(fd, b"\\nvalue 999")
            except OSError:
                pass
        os._exit(0)
        """)
    assert forged.status in ("wrong_answer", "runtime_error")


@signal_confined
def test_attacks_run_beside_good_programs_without_harming_them():
    """A hostile batch and a good batch at once: the good one is unharmed."""
    hostile = "import os\nos.kill(-1, 9)\n"
    good = "import time\ndef f():\n    time.sleep(0.2)\n    return 4\n"
    with ThreadPoolExecutor(2) as pool:
        bad_results = pool.submit(run_tests, hostile, [RETURNS_FOUR] * 6, FAST)
        good_results = pool.submit(run_tests, good, [RETURNS_FOUR] * 6, FAST)
        assert all(r.passed for r in good_results.result())
        assert not any(r.passed for r in bad_results.result())


def test_a_program_cannot_trap_the_cleanup(open_folder):
    """It locks its own directory and links to a host folder; cleanup removes both, follows neither."""
    (open_folder / "keep.txt").write_text("precious")
    before = open_folder.stat().st_mode
    workdirs = set(Path(tempfile.gettempdir()).glob("mimo-sandbox-*"))
    result = run_one(f"""
        import os
        os.makedirs("locked/deeper")
        open("locked/deeper/f", "w").write("x")
        os.symlink({str(open_folder)!r}, "link")
        os.symlink({str(open_folder)!r}, "locked/link")
        os.chmod("locked/deeper", 0)
        os.chmod("locked", 0)
        os.chmod(".", 0)
        def f():
            return 4
        """)
    assert result.passed
    assert (open_folder / "keep.txt").read_text() == "precious"
    assert open_folder.stat().st_mode == before
    assert lasting(lambda: sorted(set(Path(tempfile.gettempdir()).glob("mimo-sandbox-*")) - workdirs)) == []


# ---- multi-statement test programs: the judge process decides --------------------------------

CHECK_SQUARE = {"code": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n"
                        "    assert candidate(-1) == 1\n\ncheck(f)\n"}


def judged(program: str):
    return run_one(program, CHECK_SQUARE)


def test_a_test_program_passes_a_right_solution_and_fails_a_wrong_one():
    assert judged("def f(x):\n    return x * x\n").passed
    assert judged("def f(x):\n    return 2 * x\n").status == "wrong_answer"


@pytest.mark.parametrize("name, program", [
    ("sys.exit(0) before the test", "import sys\nsys.exit(0)\n"),
    ("os._exit(0) before the test", "import os\nos._exit(0)\n"),
    ("os._exit(0) during the test", "import os\ndef f(x):\n    os._exit(0)\n"),
    ("an object equal to everything", """
        class Anything:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def f(x):
            return Anything()
        """),
    ("an int subclass equal to everything", """
        class Four(int):
            def __eq__(self, other):
                return True
        def f(x):
            return Four(0)
        """),
    ("AssertionError and builtins replaced", """
        import builtins
        class Never(Exception):
            pass
        builtins.AssertionError = Never
        builtins.isinstance = lambda *a: True
        builtins.abs = builtins.len = lambda *a: 0
        builtins.__dict__["exec"] = lambda *a, **k: None
        def f(x):
            return 0
        """),
    ("the builtins module swapped", """
        import sys, types
        fake = types.ModuleType("builtins")
        fake.exec = fake.compile = lambda *a, **k: None
        sys.modules["builtins"] = fake
        def f(x):
            return 0
        """),
    ("a trace function that skips the test's lines", """
        import sys
        def skip(frame, event, arg):
            if event == "line" and frame.f_code.co_filename == "test":
                frame.f_lineno = frame.f_code.co_firstlineno + 100
            return skip
        sys.settrace(skip)
        sys.setprofile(lambda *a: None)
        frame = sys._getframe()
        while frame:
            frame.f_trace = skip
            frame = frame.f_back
        def f(x):
            return 0
        """),
    ("an audit hook that ends the process when the test is compiled", """
        import os, sys
        def hook(event, args):
            if event in ("compile", "exec") and "check" in repr(args):
                os.write(1, b"passed\\n")
                os._exit(0)
        sys.addaudithook(hook)
        def f(x):
            return 0
        """),
    ("fake verdicts on stdout and every descriptor", """
        import os
        for fd in range(0, 64):
            for marker in (b"passed", b"\\npassed", b"value 4", b"ready"):
                try:
                    os.write(fd, marker)
                except OSError:
                    pass
        print("passed")
        os._exit(0)
        """),
    ("the jail's own functions replaced in the solution's process", """
        import __main__
        __main__.serve = lambda *a: 0
        __main__.describe = lambda namespace, name: ("value", 4)
        __main__.is_plain = lambda value, depth=0: True
        def f(x):
            return 0
        """),
    ("killing the judge", """
        import os, signal
        for pid in range(os.getpid() + 1, os.getpid() + 50):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        def f(x):
            return 0
        """),
    ("reading the judge's memory", """
        import os
        found = []
        for pid in range(os.getpid() + 1, os.getpid() + 50):
            for what in ("mem", "environ", "fd/3"):
                try:
                    found.append(open(f"/proc/{pid}/{what}", "rb").read(10))
                except OSError:
                    pass
        if not found:
            raise PermissionError("no way into the judge")
        def f(x):
            return 0
        """),
])
def test_forging_the_verdict_of_a_test_program_fails(name, program):
    result = judged(program)
    assert not result.passed, (name, result)


def test_a_solution_cannot_find_the_expected_values_of_a_test_program():
    """The test program, with its expected values, never enters the solution's process."""
    secret = 918273645
    attack = """
        import gc, os, sys
        seen = []
        for obj in gc.get_objects():
            seen.append(repr(obj)[:10000])
        frame = sys._getframe()
        while frame:
            seen.append(repr(frame.f_locals)[:10000] + repr(frame.f_code.co_consts))
            frame = frame.f_back
        for fd in range(64):
            try:
                os.lseek(fd, 0, 0)
                seen.append(os.read(fd, 1 << 20).decode(errors="replace"))
            except OSError:
                pass
        text = " ".join(seen)
        needle = "".join(["9182", "73645"])      # built after the search, never a constant
        def f(x):
            return int(needle) if needle in text else -1
        """
    assert "918273645" not in attack
    test = {"code": f"expected = {secret}\nassert f(1) == expected\nassert f(2) == expected\n"}
    result = run_one(attack, test)
    assert result.status == "wrong_answer", result
