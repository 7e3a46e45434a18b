"""Inside the sandbox: the first code a sandboxed child runs, before the solution's first line.

`sandbox.py` starts `python -I -S -c <this file's text> JOB_FD RESULT_FD` in a session of its own,
with an empty environment, inside a private working directory. This script then, in order:

  1. reads its job (the program, the probe of an assertion test, the limits) and closes JOB_FD;
  2. keeps the standard library importable through open directory descriptors, because the
     interpreter may live where the sandbox user cannot enter (a home directory, say);
  3. leaves the network: a new network namespace holds only a loopback device that is down;
  4. drops root, when started as root: the worker slot's own uid, no groups, no capabilities;
  5. sets resource limits: CPU seconds, address space, file size (this caps stdout too: it is a
     file), open files, and processes (1: the solution cannot fork or start threads);
  6. confines it with Landlock: read the standard library, read and write the working directory,
     nothing else; no TCP connect or bind; no signals to processes outside the sandbox;
  7. runs the program as `__main__`, then the probe, and writes the probe's value as a Python
     literal to RESULT_FD. The harness, not this process, compares it with the expected value.

Steps 3, 4 and 6 use what the kernel offers and report it on the first line of RESULT_FD; if
neither 4 nor 6 is available the file system would be open, so the job is refused (exit 3).
This file imports nothing from mimo_lite: it runs in a bare interpreter.
"""

import marshal
import os
import resource
import sys

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_READ = (1 << 2) | (1 << 3)          # READ_FILE | READ_DIR
REFUSED = 3                                  # exit status: the sandbox cannot be built here
PLAIN = (int, float, bool, str, bytes, type(None), list, tuple, dict, set, frozenset)


def main():
    job_fd, result_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(job_fd, "rb") as job_file:
        job = marshal.load(job_file)
    library = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in sys.path if os.path.isdir(p)]
    sys.path[:] = [f"/proc/self/fd/{fd}" for fd in library]
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
    limit(resource.RLIMIT_CORE, 0)
    limit(resource.RLIMIT_CPU, job["cpu_s"], job["cpu_s"] + 1)   # SIGXCPU, then SIGKILL
    limit(resource.RLIMIT_AS, job["memory_bytes"])
    limit(resource.RLIMIT_FSIZE, job["file_bytes"])
    limit(resource.RLIMIT_NOFILE, job["open_files"])
    limit(resource.RLIMIT_NPROC, job["processes"])
    layers += landlock(libc, ctypes, library)
    result = os.fdopen(result_fd, "w")
    result.write(" ".join(layers) + "\n")
    result.flush()
    if "unprivileged-uid" not in layers and "landlock-files" not in layers:
        os._exit(REFUSED)
    del libc, ctypes

    status = run(job["program"], job["probe"], result)
    for stream in (result, sys.stdout, sys.__stdout__, sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)


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


if __name__ == "__main__":
    main()
