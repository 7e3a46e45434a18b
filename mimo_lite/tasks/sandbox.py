"""The code sandbox: run an untrusted program against tests, one fresh process per test.

MiMo rewards code by running test cases in "an online judge environment" that runs very large
volumes of unit tests in parallel (report §3.2). The programs come from a model, so they are
untrusted: this module is the kit's security boundary.

A test is stdin/stdout, `{"input": "...", "output": "..."}`, or one assertion run after the
solution, `{"code": "assert f(2) == 4"}`. An assertion is split in two: the sandbox evaluates the
left side (the probe, `f(2)`) after the solution's code and sends back its value as a Python
literal; the harness evaluates the right side (`4`) and compares. So the expected value never
enters the sandbox, and no object the solution made takes part in the comparison.

Any other `code` test is a test program: several statements (HumanEval's `check(candidate)`
with `check(entry_point)`, MBPP's list of asserts) or an assertion against a computed value. It
holds the expected values and decides the verdict, so it runs in a judge process beside the
solution's (jail.py, "a test program"): the names it takes from the solution are proxies whose
calls cross as plain values, and the verdict is "passed" only once the program ran to its end.

Each test runs in a new process (`jail.py` sets it up; read it for the layers) with:
  - its own session and process group, killed as a whole (SIGKILL) at the wall-clock limit;
  - CPU-time, address-space, file-size (stdout is a file, so this caps output too), open-file
    and process-count limits (one process: no fork, no threads);
  - an empty environment, `python -I -S`, and a private temporary working directory;
  - no network (a new network namespace; TCP is also refused by Landlock);
  - file access limited by Landlock to reading the standard library and using its own directory,
    and, when the kit runs as root, an unprivileged uid that no other sandbox on the machine
    holds while it runs (whichever kit process started it: a lock file per uid).
Not contained: system calls are not filtered (no seccomp); disk use inside the working directory
is bounded per file, not in total; a named unix socket that the sandbox's uid may write to (a
world-writable one) can be connected to; and where the kernel lacks user namespaces or a recent
Landlock ABI the matching layer is missing: `containment()` lists the layers this machine gives.
"""

from __future__ import annotations

import ast
import builtins
import errno
import functools
import marshal
import operator
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

JAIL = (Path(__file__).parent / "jail.py").read_text()
STATUSES = ("passed", "wrong_answer", "timeout", "runtime_error", "memory_limit", "output_limit")
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SANDBOX_UIDS = range(64000, 64256)   # as root, each running sandbox holds one that no account has
UID_LOCKS = Path("/tmp/mimo-lite-sandbox-uids")   # root's, a lock per uid; a fixed path, not
                                                  # $TMPDIR: every kit process finds the same locks
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
           ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
           ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
           ast.Is: operator.is_, ast.IsNot: operator.is_not}


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 1           # RLIMIT_CPU: SIGXCPU after this many CPU seconds, SIGKILL 1 s later
    wall_s: float = 4.0      # the harness kills the process group after this (sleeping, blocking)
    memory_mb: int = 256     # RLIMIT_AS
    output_kb: int = 64      # RLIMIT_FSIZE: stdout, stderr and every file it writes
    open_files: int = 32     # RLIMIT_NOFILE
    processes: int = 1       # RLIMIT_NPROC: its own process only


@dataclass(frozen=True)
class TestResult:
    status: str              # one of STATUSES
    detail: str = ""         # what went wrong, for a reader
    time_s: float = 0.0      # wall-clock seconds

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Check:
    """A test, ready to run: what the sandbox gets, and what stays with the harness."""
    stdin: str = ""              # fed to the program (stdin/stdout tests)
    probe: str | None = None     # evaluated after the program (assertion tests)
    expected_output: str = ""    # harness only
    compare: object = None       # harness only: (value, expected) -> bool
    expected: object = None      # harness only
    test_program: str | None = None   # run by the judge process (multi-statement tests)
    names: tuple = ()            # what the test program takes from the solution's namespace


AST_LOCK = threading.Lock()     # CPython 3.11's AST constructor keeps one recursion counter per
                                # interpreter: parsing from two threads at once can raise SystemError


def parse_test(test: dict) -> Check:
    """A test of the problems contract as a Check; ValueError says what is wrong with it."""
    with AST_LOCK:
        return _parse_test(test)


def _parse_test(test: dict) -> Check:
    if not isinstance(test, dict):
        raise ValueError(f"a test must be a dict, got {type(test).__name__}")
    if set(test) - {"level"} == {"input", "output"}:
        if not isinstance(test["input"], str) or not isinstance(test["output"], str):
            raise ValueError("a stdin/stdout test needs string 'input' and 'output'")
        return Check(stdin=test["input"], expected_output=test["output"])
    if set(test) - {"level"} != {"code"}:
        raise ValueError(f"a test holds either 'input' and 'output' or 'code' (plus 'level'), "
                         f"got keys {sorted(test)}")
    try:
        tree = ast.parse(test["code"])
    except (SyntaxError, TypeError) as err:
        raise ValueError(f"test code {test['code']!r} is not valid Python: {err}") from None
    if len(tree.body) == 1 and not isinstance(tree.body[0], ast.Assert):
        raise ValueError(f"test code {test['code']!r} must be a single assert statement or a "
                         f"test program of several statements")
    claim = tree.body[0].test if len(tree.body) == 1 else None
    if isinstance(claim, ast.Compare) and len(claim.ops) == 1 and type(claim.ops[0]) in COMPARE:
        try:
            expected = ast.literal_eval(claim.comparators[0])
            return Check(probe=ast.unparse(claim.left), compare=COMPARE[type(claim.ops[0])],
                         expected=expected)
        except ValueError:                  # `assert f(x) == g(y)`: the judge compares
            pass
    elif isinstance(claim, ast.UnaryOp) and isinstance(claim.op, ast.Not):   # assert not f(x)
        return Check(probe=ast.unparse(claim.operand), compare=lambda v, _: not v)
    elif claim is not None:
        return Check(probe=ast.unparse(claim), compare=lambda v, _: bool(v))   # assert f(x)
    return Check(test_program=test["code"], names=free_names(tree))


def free_names(tree: ast.AST) -> tuple[str, ...]:
    """The names a test program reads but never binds and that are not builtins: what it takes
    from the solution (HumanEval's entry point and the prompt's helpers, MBPP's function).

    >>> free_names(ast.parse("def check(candidate):\\n    assert candidate(1) == poly(2)\\ncheck(f)"))
    ('f', 'poly')
    """
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return tuple(sorted(loaded - bound - set(dir(builtins))))


def run_tests(program: str, tests: list[dict], limits: Limits | None = None) -> list[TestResult]:
    """Run `program` once per test, in parallel over the worker slots; one result per test."""
    checks = [parse_test(t) for t in tests]
    limits = limits or Limits()
    containment()                                   # refuse early if this machine cannot confine
    with ThreadPoolExecutor(max(1, min(WORKERS, len(checks)))) as pool:
        return [r for r, _ in pool.map(lambda c: _run_in_slot(program, c, limits), checks)]


@functools.cache
def containment() -> tuple[str, ...]:
    """The layers the sandbox gets on this machine, e.g. ('network-namespace', 'landlock-files')."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError("The code sandbox needs Linux (namespaces, Landlock, pidfd): run the "
                           "kit in a Linux VM or container.")
    layers = _run_in_slot("", Check(), Limits())[1]
    if not {"unprivileged-uid", "landlock-files"} & set(layers):
        raise RuntimeError("The code sandbox cannot confine the file system on this machine: it "
                           "needs Landlock (Linux 5.13 or later) or root to switch to an "
                           "unprivileged uid. Run the kit in a recent Linux VM or container.")
    return layers


# ---- one test in one process --------------------------------------------------------------

_SLOTS = threading.BoundedSemaphore(WORKERS)


def _run_in_slot(program: str, check: Check, limits: Limits):
    """At most WORKERS sandboxes of this process run at once, however many callers; as root each
    runs under a uid of its own (`_claim_uid`)."""
    with _SLOTS, _claim_uid() as uid:
        return _execute(program, check, limits, uid)


@contextmanager
def _claim_uid():
    """As root: a uid of SANDBOX_UIDS that no other sandbox on the machine holds until this one is
    over, whichever process runs it (two pytest workers, the worker processes of a `Jobs` pool).
    Sharing a uid would let one sandbox signal the other where Landlock does not scope signals
    (`os.kill(-1, 9)`), and count the other's processes against its RLIMIT_NPROC. The claim is an
    exclusive flock on the uid's file in UID_LOCKS, released when the file is closed or the
    process dies, so no claim outlives its owner (not `artifacts.claim`: that waits for one lock
    and is re-entrant within a process, where two threads need two uids). Not root: None."""
    if os.getuid() != 0:
        yield None
        return
    import fcntl                                    # POSIX, as root only: imported here
    folder, uids = _uid_lock_folder(), _unassigned_uids()
    if not uids:
        raise RuntimeError(f"Every uid the sandbox may run as (SANDBOX_UIDS, {SANDBOX_UIDS.start}-"
                           f"{SANDBOX_UIDS.stop - 1}) belongs to an account here: move those "
                           f"accounts or run the kit as a user other than root.")
    while True:
        for uid in uids:
            fd = os.open(folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield uid
            finally:
                os.close(fd)
            return
        time.sleep(0.05)                   # every uid is running a sandbox: wait for one


@functools.cache
def _unassigned_uids() -> tuple[int, ...]:
    """SANDBOX_UIDS less those an account of this machine has (a package's system user may)."""
    import pwd

    def assigned(uid):
        try:
            return pwd.getpwuid(uid) is not None
        except KeyError:
            return False
    return tuple(uid for uid in SANDBOX_UIDS if not assigned(uid))


def _uid_lock_folder() -> Path:
    try:
        UID_LOCKS.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = UID_LOCKS.lstat()                       # a link is not a folder here
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise RuntimeError(f"{UID_LOCKS} holds the sandbox's uid locks, so it must be a folder of "
                           f"root's that no one else may open; it is not: remove it and run again.")
    return UID_LOCKS


def _execute(program: str, check: Check, limits: Limits, uid: int | None):
    workdir = tempfile.mkdtemp(prefix="mimo-sandbox-")
    if uid is not None:
        os.chown(workdir, uid, uid)
    job = {"program": program, "probe": check.probe, "uid": uid, "cpu_s": limits.cpu_s,
           "memory_bytes": limits.memory_mb << 20, "file_bytes": limits.output_kb << 10,
           "open_files": limits.open_files, "processes": limits.processes}
    files = [tempfile.TemporaryFile() for _ in range(6)]     # anonymous: no path to find
    job_file, result_file, stdin, stdout, stderr, judge_file = files
    fds = [job_file.fileno(), result_file.fileno()]
    if check.test_program is not None:       # the test program goes to the judge process only
        marshal.dump(dict(job, program=None, test=check.test_program), judge_file)
        job["names"] = check.names
        fds.append(judge_file.fileno())
    try:
        marshal.dump(job, job_file)
        stdin.write(check.stdin.encode())
        for f in (job_file, stdin, judge_file):
            f.seek(0)
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", JAIL, *map(str, fds)],
            stdin=stdin, stdout=stdout, stderr=stderr, cwd=workdir, env={},
            pass_fds=fds, start_new_session=True)
        finished = _wait(proc.pid, limits.wall_s)
        _kill_group(proc.pid)                 # leftovers too; the leader is not reaped yet
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - start
        outputs = []
        for f in (result_file, stdout, stderr):
            f.seek(0)
            outputs.append(f.read((limits.output_kb << 10) + 1).decode(errors="replace"))
    finally:
        for f in files:
            f.close()
        _remove(workdir)
    result, out, err = outputs
    layers, _, outcome = result.partition("\n")
    cpu_s = usage.ru_utime + usage.ru_stime
    verdict = _verdict(check, limits, proc.returncode, not finished, cpu_s, outcome, out, err)
    return TestResult(verdict[0], verdict[1][:300], round(elapsed, 4)), tuple(layers.split())


def _wait(pid: int, timeout: float) -> bool:
    """Wait for the process to exit (without reaping it); False at the time limit."""
    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):       # the group, and the leader even if it left the group
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _remove(folder: str) -> None:
    """Remove the working directory, even where the program took away its own permissions.

    The program is dead by now (and could not fork), so nothing changes the tree under us;
    symbolic links are never followed, so a link to a host directory is removed, not touched.
    """
    os.chmod(folder, 0o700)
    for root, dirs, _ in os.walk(folder):        # top-down: restore each directory, then enter it
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


def _verdict(check, limits, returncode, timed_out, cpu_s, outcome, out, err) -> tuple[str, str]:
    if timed_out:
        return "timeout", f"killed after {limits.wall_s} s of wall-clock time"
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_s >= limits.cpu_s):
        return "timeout", f"killed after {cpu_s:.1f} s of CPU time"
    if (f"[Errno {errno.EFBIG}]" in outcome or returncode == -signal.SIGXFSZ
            or len(out) >= limits.output_kb << 10):        # Python ignores SIGXFSZ: EFBIG
        return "output_limit", f"wrote more than {limits.output_kb} KB"
    if outcome.startswith("error MemoryError"):
        return "memory_limit", f"needed more than {limits.memory_mb} MB"
    if returncode != 0:
        reason = outcome.removeprefix("error ") or err.strip()[-300:]
        return "runtime_error", reason or f"exit status {returncode}"
    if check.test_program is not None:
        if outcome == "passed":           # written by the judge once the test program ended
            return "passed", ""
        if outcome.startswith("failed "):
            return "wrong_answer", outcome.removeprefix("failed ")
        return "runtime_error", outcome.removeprefix("error ") or "the test program did not finish"
    if check.probe is None:
        if _lines(out) == _lines(check.expected_output):
            return "passed", ""
        return "wrong_answer", f"printed {out[:100]!r}"
    if not outcome.startswith("value "):
        return "runtime_error", "the program ended before the test ran"
    try:
        with AST_LOCK:
            value = ast.literal_eval(outcome.removeprefix("value "))
        ok = bool(check.compare(value, check.expected))
    except Exception:                       # unreadable or incomparable: not the expected value
        return "wrong_answer", f"returned {outcome[6:106]!r}"
    return ("passed", "") if ok else ("wrong_answer", f"{check.probe[:60]} gave {value!r:.100}")


def _lines(text: str) -> list[str]:
    """Output compared line by line, ignoring trailing spaces and trailing blank lines."""
    return [line.rstrip() for line in text.rstrip().splitlines()]
