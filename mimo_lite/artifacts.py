"""Artifacts under `runs/<profile>/`: built once, reused while their config is unchanged.

Each artifact folder carries a `BUILD.json` holding the fingerprint: a hash of what decides the
result, namely the profile sections the build reads, the fingerprints of the artifacts it starts
from, the seed, and the artifact's entry in FORMAT. A folder whose fingerprint differs from the
current one is stale and is rebuilt. Neither the Python version nor the kit's source code enters
a fingerprint, so a `runs/` folder built on one machine is current on another (`mimo-lite pack`). A build writes into a hidden sibling folder
and is swapped into place only when complete, so an interrupted build never leaves a half-written
artifact behind: the old one, or nothing, stays readable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import os
import shutil
import threading
import time
from pathlib import Path

MARKER = "BUILD.json"

# The version of each artifact's format: bump an entry when a change to the code changes what
# that artifact holds for the same settings (a generator, the chat template, the training step),
# so that every copy built before the change, here or on another machine, counts as stale. The
# artifacts built from it follow, since their fingerprints include its fingerprint.
FORMAT = {
    "corpus": 3,        # runs/<p>/corpus/: documents and report (data/)
    "tokenizer": 2,     # runs/<p>/tokenizer/: BPE and chat template (tokenizer.py, chat.py)
    "packed": 2,        # runs/<p>/corpus/packed/: the stage mixtures as token rows (data/mixture.py)
    "base": 2,          # runs/<p>/base/ and the pretrain/ runs (train/loop.py, model.py)
    "problems": 2,      # runs/<p>/problems/ (tasks/problems.py and its templates)
    "sft_data": 5,      # runs/<p>/sft/data/: the teacher's traces, cleaned (data/sft.py)
    "sft": 2,           # runs/<p>/sft/<variant>/ (train/sft.py)
    "rl": 2,            # GRPO runs: rl/, rl_zero/, ablations/, seamless/ (rl/)
}


def repo_root() -> Path | None:
    """The kit's checkout (holding `notebooks/` and `pyproject.toml`) above the working directory."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").exists():
            return folder
    return None


def runs_dir(profile_name: str, root: str | Path | None = None) -> Path:
    """`runs/<profile>/`: every artifact of a profile. $MIMO_LITE_RUNS overrides `runs/`."""
    if root is None:
        root = os.environ.get("MIMO_LITE_RUNS") or (repo_root() or Path.cwd()) / "runs"
    return Path(root) / profile_name


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts. A dataclass (a profile section) counts by its fields,
    less those declared `fingerprint=False` (how often a run logs, where it reports: nothing that
    changes what it produces), so changing only those reuses what was built."""
    def plain(x):
        if dataclasses.is_dataclass(x):
            return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)
                    if f.metadata.get("fingerprint", True)}
        return str(x)
    text = json.dumps(parts, sort_keys=True, default=plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current(folder: Path, digest: str) -> bool:
    """Whether `folder` holds a complete build with fingerprint `digest`."""
    try:
        return json.loads((Path(folder) / MARKER).read_text())["fingerprint"] == digest
    except (OSError, ValueError, KeyError):
        return False


def build_info(folder: Path) -> dict:
    """The BUILD.json of a complete build: fingerprint, seconds it took, what the builder added."""
    return json.loads((Path(folder) / MARKER).read_text())


@contextlib.contextmanager
def building(folder: Path, digest: str, **info):
    """Yield a scratch folder; on success it replaces `folder`, stamped with `digest`, the
    build's duration in seconds, and `info`.

    with building(path, digest) as tmp: write into tmp
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        yield tmp
        marker = {"fingerprint": digest, "seconds": round(time.perf_counter() - t0, 2), **info}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, default=str))
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


try:
    import fcntl
except ImportError:                     # not a POSIX system: no locks, one command at a time
    fcntl = None

_held: dict[str, int] = {}      # the locks this process holds, and how deeply


@contextlib.contextmanager
def claim(lock: Path):
    """Hold `lock` (a file) exclusively among processes; re-entrant within one process.

    Without it, two commands started together on a fresh `runs/` (two GRPO runs, a notebook
    beside them) each build the same artifact and swap their copies into place over each
    other's half-read files. Under torchrun the ranks build together, so no lock is taken.
    """
    key = str(Path(lock).resolve())
    if fcntl is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    Path(lock).parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        _take(handle, lock)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            fcntl.flock(handle, fcntl.LOCK_UN)


# A process that finds an artifact current holds its lock while it checks and loads it: well under
# a second once the libraries are imported, 2-3 s for the first check in a fresh worker on a slow
# CPU. Notebook 04's two runs take turns that way at their start (the corpus, the tokenizer, the
# packed data), about thirty times in a `make run`. A build takes tens of seconds or minutes: only a wait
# longer than this is worth a line.
SAY_WAIT_AFTER_S = 10.0


def _take(handle, lock) -> None:
    """flock `handle` exclusively; once the wait passes SAY_WAIT_AFTER_S, say so and block."""
    start = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() - start >= SAY_WAIT_AFTER_S:
                break
            time.sleep(0.02)
    print(f"[mimo-lite] waiting for another process that holds {lock} (building or checking that artifact)",
          flush=True)
    fcntl.flock(handle, fcntl.LOCK_EX)


def one_builder(name):
    """Decorate an `ensure_*(profile, ..., runs_root=None, ...)` so that one process at a time
    runs it for a profile: the others wait, then find the artifact current and load it.
    `name` names the lock (`runs/<profile>/.<name>.lock`), or is a function of the call's
    arguments for builders with several artifacts (the SFT variants, the GRPO runs)."""
    def wrap(ensure):
        signature = inspect.signature(ensure)

        @functools.wraps(ensure)
        def ensured(*args, **kwargs):
            call = signature.bind(*args, **kwargs)
            call.apply_defaults()
            arguments = call.arguments
            label = name(arguments) if callable(name) else name
            profile = arguments["profile"]          # a Profile, or its name or file's path
            profile_name = (Path(profile).stem if isinstance(profile, (str, Path))
                            else profile.name)
            root = runs_dir(profile_name, arguments.get("runs_root"))
            with claim(root / f".{label}.lock"):
                return ensure(*args, **kwargs)
        return ensured
    return wrap


def run_folder(folder: Path, digest: str) -> Path:
    """A training run's working folder (checkpoints, metrics), kept for resuming while its
    fingerprint is `digest`; another configuration's leftovers are removed first."""
    folder = Path(folder)
    stamp = folder / "FINGERPRINT"
    if folder.exists() and (not stamp.exists() or stamp.read_text() != digest):
        shutil.rmtree(folder)                      # another config's run: start afresh
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return folder


def write_json(path: Path, data) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


@contextlib.contextmanager
def quiet_datasets():
    """Silence `datasets` progress bars while the kit builds artifacts (restored afterwards)."""
    import datasets
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


class Then:
    """`Then(build, use)()` is `use(build())`: an artifact and what is done with it, as one call
    that a worker process can run (both must be picklable, e.g. `functools.partial`s of kit
    functions).

    >>> import functools, operator
    >>> Then(functools.partial(operator.add, 1, 2), functools.partial(operator.mul, 10))()
    30
    """

    def __init__(self, build, use):
        self.build, self.use = build, use

    def __call__(self):
        return self.use(self.build())


def exit_with_parent(poll_s: float = 1.0) -> None:
    """In a worker process: end it within `poll_s` seconds once the process that started it is gone.

    A pool's workers outlive a parent that is killed (a notebook's kernel stopped, a command
    timed out): a worker in the middle of a build would go on training on its own, holding its
    memory (a GPU's, too) and writing checkpoints into the run folder that the next, resumed run
    also writes. A daemon thread watches the parent's pid and ends the worker when it changes;
    the build it leaves behind is a scratch folder, never a half-written artifact (`building`).
    """
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# In a `Jobs` worker: the pool's count of calls running now (one integer shared by its workers)
# and the cores the pool was given; `share_cores` reads them. None outside a worker.
_running = None
_cores = 1


def _start_worker(threads: int | None, running=None, cores: int = 1) -> None:
    """A `Jobs` worker: its torch threads (the profile's `threads`: 1 per process on the toy CPU),
    the pool's count of running calls, and it ends with its parent."""
    global _running, _cores
    exit_with_parent()
    _running, _cores = running, cores
    if threads:
        import torch
        torch.set_num_threads(threads)


def _counted(call):
    """Run `call` in a worker, counted among the pool's running calls while it runs."""
    with _running.get_lock():
        _running.value += 1
    try:
        return call()
    finally:
        with _running.get_lock():
            _running.value -= 1


def share_cores() -> None:
    """In a `Jobs` worker, take the cores that the pool's other calls leave idle: torch threads =
    the pool's cores // its calls running now (elsewhere: nothing). The trainers call it at each
    step (pre-training's and SFT's optimiser step, GRPO's step), so the last run of a notebook's
    batch, once the others have finished, trains on both cores of the toy CPU instead of one
    (1.5-1.7× a step). Nothing it computes changes: on the CPU the kit is run on, training steps
    and sampling give the same bits with 1 or 2 threads (tests/test_threads.py checks it where
    the tests run)."""
    if _running is None:
        return
    import torch
    want = max(1, _cores // max(1, _running.value))
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's threads in this thread set to `n` inside the block, then restored (None: unchanged)."""
    import torch
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Later:
    """A call run where and when its result is first asked for (`Jobs` with one process)."""

    def __init__(self, call):
        self.call, self.ran, self.value = call, False, None

    def result(self):
        if not self.ran:
            self.value, self.ran = self.call(), True
        return self.value


class Jobs:
    """Builds started now and collected later, `processes` at a time: `submit(call)` queues a
    call (a `functools.partial` of a kit function) and returns a handle whose `result()` waits for
    it. A notebook submits every independent run as soon as it can, so that both cores stay busy
    while earlier sections are read; calls run first-come first-served. With `processes` 1 nothing
    runs until its result is asked for, here, in the order asked: the serial run of a `gpu` or
    `smoke` notebook. Every call must be independent of the calls still running (submit a call
    that reads another's artifact only after that one's `result()`), and each seeds itself, so
    the artifacts are the ones a serial run builds. A training call left running alone takes the
    idle cores at its next training step (`share_cores`).

        jobs = Jobs(2)
        rl = jobs.submit(partial(ensure_rl_model, profile, "sft"))
        ...
        folder = rl.result()
        jobs.close()
    """

    def __init__(self, processes: int = 1, threads: int | None = None):
        self.pool = None
        if processes > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the caller may hold torch's thread pools and a Jupyter kernel's sockets
            context = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                                            initargs=(threads, context.Value("i", 0), processes * (threads or 1)))

    def submit(self, call, here: bool = False):
        """`here`: run the call in this process when its result is asked for, as with one process
        (for a call that will only find its artifact built: no worker needs to start for it)."""
        return self.pool.submit(_counted, call) if self.pool and not here else _Later(call)

    def close(self) -> None:
        """Wait for the calls submitted and stop the worker processes."""
        if self.pool:
            self.pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_all(calls: list, processes: int = 1, threads: int | None = None) -> list:
    """Build independent artifacts side by side: each call (a `functools.partial` of a kit
    function such as `ensure_rl_model`) runs in one of `processes` worker processes, and the
    results come back in the order of `calls`. With `processes` 1 they run here, one after the
    other. On a CPU with one torch thread per process (the toy profile), two processes use the
    machine's two cores where one run alone leaves one idle; every call must be independent of
    the others (none reads what another builds), and each seeds itself, so the artifacts are the
    ones a serial run builds. `threads` sets torch's threads in each worker.

    >>> import functools, operator
    >>> build_all([functools.partial(operator.add, 1, 2), functools.partial(operator.mul, 3, 4)])
    [3, 12]
    """
    if len(calls) <= 1:
        processes = 1
    with Jobs(min(processes, len(calls)), threads) as jobs:
        handles = [jobs.submit(call) for call in calls]
        return [h.result() for h in handles]
