"""Inside the sandbox: the first code a sandboxed child runs, before the solution's first line.

`sandbox.py` starts `python -I -S -c <this file's text> JOB_FD RESULT_FD [JUDGE_JOB_FD]` in a
session of its own, with an empty environment, inside a private working directory. This script then, in order:

  1. reads its job (the program, the probe of an assertion test, the limits) and closes JOB_FD;
  2. keeps the standard library importable through open directory descriptors, because the
     interpreter may live where the sandbox user cannot enter (a home directory, say);
  3. leaves the network: a new network namespace holds only a loopback device that is down;
  4. drops root, when started as root: a uid of its own (no other sandbox holds it), no groups,
     no capabilities;
  5. sets resource limits: CPU seconds, address space, file size (this caps stdout too: it is a
     file), open files, and processes (1: the solution cannot fork or start threads);
  6. confines it with Landlock: read the standard library, read and write the working directory,
     nothing else; no TCP connect or bind; no signals to processes outside the sandbox;
  7. runs the program as `__main__`, then the probe, and writes the probe's value as a Python
     literal to RESULT_FD. The harness, not this process, compares it with the expected value.

With a third descriptor, JUDGE_JOB_FD, the test is a multi-statement test program: a judge
process is forked first and both are confined separately (see "a test program" below).

Steps 3, 4 and 6 use what the kernel offers and report it on the first line of RESULT_FD; if
neither 4 nor 6 is available the file system would be open, so the job is refused (exit 3).
This file imports nothing from mimo_lite: it runs in a bare interpreter.
"""

import marshal
import os
import resource
import sys

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_READ = (1 << 2) | (1 << 3)          # READ_FILE | READ_DIR
REFUSED = 3                                  # exit status: the sandbox cannot be built here
PLAIN = (int, float, bool, str, bytes, type(None), list, tuple, dict, set, frozenset)


def main():
    job_fd, result_fd = int(sys.argv[1]), int(sys.argv[2])
    library = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in sys.path if os.path.isdir(p)]
    sys.path[:] = [f"/proc/self/fd/{fd}" for fd in library]
    if len(sys.argv) > 3:                 # a test program: a judge process beside the solution
        os._exit(split(job_fd, result_fd, int(sys.argv[3]), library))
    job = read_job(job_fd)
    layers = confine(job, library)
    result = os.fdopen(result_fd, "w")
    result.write(" ".join(layers) + "\n")
    result.flush()
    if "unprivileged-uid" not in layers and "landlock-files" not in layers:
        os._exit(REFUSED)
    status = run(job["program"], job["probe"], result)
    flush(result)
    os._exit(status)


def read_job(fd):
    with os.fdopen(fd, "rb") as job_file:
        return marshal.load(job_file)


def confine(job, library, private=False):
    """Steps 3 to 6 for this process; returns the layers applied. `private`: no other process
    of the same user may trace it or read its memory (PR_SET_DUMPABLE 0): the judge's."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    layers = []
    root = os.getuid() == 0
    if libc.unshare(CLONE_NEWNET if root else CLONE_NEWUSER | CLONE_NEWNET) == 0:
        layers.append("network-namespace")
    if root:
        os.setgroups([])
        os.setgid(job["uid"])
        os.setuid(job["uid"])        # real, effective and saved uid; capabilities are dropped
        layers.append("unprivileged-uid")
    if private and libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        return []
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_CPU, job["cpu_s"], job["cpu_s"] + 1)   # SIGXCPU, then SIGKILL
    limit(resource.RLIMIT_AS, job["memory_bytes"])
    limit(resource.RLIMIT_FSIZE, job["file_bytes"])
    limit(resource.RLIMIT_NOFILE, job["open_files"])
    limit(resource.RLIMIT_NPROC, job["processes"])
    layers += landlock(libc, ctypes, library)
    return layers


def flush(result):
    for stream in (result, sys.stdout, sys.__stdout__, sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass


def limit(kind, soft, hard=None):
    resource.setrlimit(kind, (soft, soft if hard is None else hard))


def landlock(libc, ctypes, library):
    """Landlock (Linux >= 5.13): deny every file access except the library (read) and the cwd.

    ABI 4 adds TCP bind/connect, ABI 6 scopes signals and abstract unix sockets to the sandbox.
    Returns the layers it could apply.
    """
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return []
    files = (1 << 13) - 1                                # ABI 1: 13 access rights
    files |= (abi >= 2) << 13 | (abi >= 3) << 14 | (abi >= 5) << 15   # REFER, TRUNCATE, IOCTL_DEV
    net = 0b11 if abi >= 4 else 0                        # BIND_TCP | CONNECT_TCP: none allowed
    scoped = 0b11 if abi >= 6 else 0                     # ABSTRACT_UNIX_SOCKET | SIGNAL
    fields = [files] + ([net] if abi >= 4 else []) + ([scoped] if abi >= 6 else [])
    attr = (ctypes.c_uint64 * len(fields))(*fields)
    ruleset = syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                      ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        return []

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    for fd, access in [(fd, LANDLOCK_READ) for fd in library] + [(cwd, files)]:
        rule = PathBeneath(access, fd)
        if syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1),
                   ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            return []
    os.close(cwd)
    if (libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            or syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0):
        return []
    os.close(ruleset)
    return ["landlock-files"] + ["landlock-tcp"] * bool(net) + ["landlock-signals"] * bool(scoped)


def run(program, probe, result):
    """Exit status 0 when the program (and the probe) ran; the probe's value goes to `result`."""
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    sys.argv[:] = ["solution.py"]
    try:
        try:
            exec(compile(program, "solution.py", "exec"), namespace)
        except SystemExit as stop:        # a stdin/stdout program may end with sys.exit(0)
            if probe is not None or stop.code not in (None, 0):
                raise
        if probe is None:
            return 0
        value = eval(compile(probe, "test", "eval"), namespace)
        if not is_plain(value):
            raise TypeError(f"the test's expression gave a {type(value).__name__}, "
                            f"not a plain value (number, string, None, list, tuple, dict, set)")
        text = repr(value)
    except BaseException as err:          # MemoryError, SystemExit and KeyboardInterrupt included
        result.write(f"error {type(err).__name__}: {err}"[:500])
        return 1
    result.write("value " + text)
    return 0


def is_plain(value, depth=0):
    """Exact built-in types only: a subclass could redefine __eq__ or __repr__."""
    if depth > 100 or not any(type(value) is kind for kind in PLAIN):
        return False
    if type(value) is dict:
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in value.items())
    if type(value) is list or type(value) is tuple or type(value) is set or type(value) is frozenset:
        return all(is_plain(v, depth + 1) for v in value)
    return True


# ---- a test program: the judge and the solution in two processes ---------------------------
#
# A test program (HumanEval's `check(candidate)`, a list of asserts) holds the expected values and
# decides the verdict, so it must not share a process with the solution: in one interpreter the
# solution could replace builtins, hook or skip the test's code, or write a fake verdict. Here the
# first process forks a judge before anything else happens; the two are confined separately:
#
#   solution (this process, the one the harness watches):  gets the program and the names the
#       test needs; runs the program, then answers calls `name(*args)` with plain values;
#   judge (its child):  gets the test program; runs it with each of those names bound to a proxy
#       that sends the call's plain arguments to the solution and returns the plain value it
#       gets back. It alone holds RESULT_FD, and writes "passed" only after the test program ran
#       to its end.
#
# The solution never holds the test, the verdict channel or a reference to any of the judge's
# objects; it cannot trace the judge (a Landlock domain and user namespace of its own, and
# PR_SET_DUMPABLE 0). What crosses between them is a Python literal read with
# `ast.literal_eval`, so only exact built-in values reach the test's comparisons.

FRAME = 8                                    # bytes of a message's length prefix
MAX_MESSAGE = 1 << 24


def split(job_fd, result_fd, judge_fd, library):
    """Fork the judge; return the solution's exit status (the judge exits on its own)."""
    to_solution, to_judge = os.pipe(), os.pipe()          # (read end, write end) each
    judge_pid = os.fork()
    if judge_pid == 0:
        for fd in (job_fd, to_solution[0], to_judge[1]):
            os.close(fd)
        job = read_job(judge_fd)
        layers = confine(job, library, private=True)
        result = os.fdopen(result_fd, "w")
        result.write(" ".join(layers) + "\n")
        result.flush()
        if "unprivileged-uid" not in layers and "landlock-files" not in layers:
            os._exit(REFUSED)
        judge(job["test"], to_solution[1], to_judge[0], result)
        flush(result)
        os._exit(0)
    for fd in (judge_fd, result_fd, to_solution[1], to_judge[0]):
        os.close(fd)                          # before the solution exists: the judge's alone
    job = read_job(job_fd)
    layers = confine(job, library)
    if "unprivileged-uid" not in layers and "landlock-files" not in layers:
        return REFUSED
    status = serve(job["program"], job["names"], to_solution[0], to_judge[1])
    try:
        os.waitpid(judge_pid, 0)              # the judge has written its verdict
    except OSError:
        pass
    return status


def serve(program, names, requests, replies):
    """The solution's side: run the program, describe `names`, then answer calls until EOF."""
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    sys.argv[:] = ["solution.py"]
    try:
        exec(compile(program, "solution.py", "exec"), namespace)
        send(replies, repr(("ready", {name: describe(namespace, name) for name in names})))
    except BaseException as err:
        send(replies, repr(("error", f"{type(err).__name__}: {err}"[:500])))
        return 1
    import ast
    while True:
        request = receive(requests)
        if request is None:
            return 0
        try:
            name, args, kwargs = ast.literal_eval(request)
            value = namespace[name](*args, **kwargs)
            if not is_plain(value):
                raise TypeError(f"{name} returned a {type(value).__name__}, not a plain value "
                                f"(number, string, None, list, tuple, dict, set)")
            reply = repr(("value", value))
        except BaseException as err:          # the judge raises it again, as a built-in type
            reply = repr(("raise", type(err).__name__, str(err)[:500]))
        send(replies, reply)


def describe(namespace, name):
    """How the judge should bind `name`: a module it imports itself, a plain value, or a proxy."""
    if name not in namespace:
        return ("missing",)
    value = namespace[name]
    if type(value) is type(sys):
        return ("module", value.__name__)
    if is_plain(value):
        return ("value", value)
    return ("callable",) if callable(value) else ("missing",)


def judge(test, requests, replies, result):
    """The judge's side: bind the names the solution offers, run the test program, write the verdict."""
    import ast
    import builtins
    import importlib

    def call_solution(name):
        def proxy(*args, **kwargs):
            if not is_plain(args) or not is_plain(kwargs):
                raise TypeError(f"{name}() got an argument that is not a plain value: the test can "
                                f"pass only numbers, strings, None, lists, tuples, dicts and sets")
            send(requests, repr((name, args, kwargs)))
            reply = read_reply(replies)
            if len(reply) == 2 and reply[0] == "value":
                return reply[1]
            if len(reply) == 3 and reply[0] == "raise" and type(reply[1]) is str:
                raise exception_named(reply[1])(reply[2])
            raise RuntimeError(f"the solution's process gave an unreadable reply to {name}()")
        proxy.__name__ = name
        return proxy

    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        ready = read_reply(replies)
        if ready[0] == "error" and len(ready) == 2:
            raise RuntimeError(str(ready[1]))
        if ready[0] != "ready" or len(ready) != 2 or type(ready[1]) is not dict:
            raise RuntimeError("the solution's process did not get ready")
        for name, how in ready[1].items():
            if type(name) is not str or type(how) is not tuple or not how:
                continue
            if how[0] == "callable":
                namespace[name] = call_solution(name)
            elif how[0] == "module" and len(how) == 2 and type(how[1]) is str:
                namespace[name] = importlib.import_module(how[1])
            elif how[0] == "value" and len(how) == 2:
                namespace[name] = how[1]
        exec(compile(test, "test", "exec"), namespace)
    except AssertionError as err:
        result.write(f"failed AssertionError: {err}"[:500])
        return
    except BaseException as err:
        result.write(f"error {type(err).__name__}: {err}"[:500])
        return
    result.write("passed")                    # only here: the test program ran to its end


def exception_named(name):
    """The built-in exception class called `name` (RuntimeError for any other name)."""
    import builtins
    kind = getattr(builtins, name, None)
    if type(kind) is type and issubclass(kind, Exception):
        return kind
    return RuntimeError


def read_reply(fd):
    """The solution's next message as a tuple of plain values; RuntimeError if it ended or lied."""
    import ast
    text = receive(fd)
    if text is None:
        raise RuntimeError("the solution's process ended before the test program finished")
    reply = ast.literal_eval(text)
    if type(reply) is not tuple or not reply:
        raise RuntimeError("the solution's process sent something other than a reply")
    return reply


def send(fd, text):
    data = text.encode("utf-8", "surrogatepass")
    data = len(data).to_bytes(FRAME, "big") + data
    while data:
        data = data[os.write(fd, data):]


def receive(fd):
    """One length-prefixed message, or None at end of file."""
    header = read_exactly(fd, FRAME)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_MESSAGE:
        raise RuntimeError(f"a message of {size} bytes is over the {MAX_MESSAGE} byte limit")
    data = read_exactly(fd, size)
    return None if data is None else data.decode("utf-8", "surrogatepass")


def read_exactly(fd, size):
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    main()
