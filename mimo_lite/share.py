"""Sharing a profile's artifacts between machines: `mimo-lite pack` and `mimo-lite unpack`.

An instructor builds `runs/toy/` once and packs it; each student unpacks the archive into their
own checkout, and the notebooks then find every model current and train nothing. This works
because a fingerprint holds only what changes results (see `artifacts.FORMAT`), never the
machine's Python or the kit's source files.

The archive (`.tar.gz`) holds `MANIFEST.json` (kit version, profile, FORMAT, each artifact's
fingerprint, every file's size and SHA-256) and `<profile>/...`, the files of `runs/<profile>/`
that the notebooks read:

- every artifact folder (the ones with a `BUILD.json`, and `problems/`);
- of a training run's working folder (checkpoints, kept for resuming) only what notebooks read,
  RUN_FILES; the other working folders (`sft/*_run/`, `grpo/`) are left out, since their results
  are copied into the model folders;
- not the evaluations and the report: notebook 10 recomputes them (without training), and an
  evaluation's settings name the model's path on the machine that ran it;
- the executed notebooks only when asked for (`--notebooks`).

`unpack` checks the whole archive (its manifest, each file's SHA-256, the member names) before
it writes anything, then swaps each artifact folder into place whole, as a build does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from .artifacts import FORMAT, MARKER, runs_dir
from .profile import as_profile, load_profile

MANIFEST = "MANIFEST.json"
LAYOUT = 1                               # of the archive and its manifest
RUN_FILES = {                            # a run's working folder -> what notebooks read from it
    "pretrain": ("FINGERPRINT", "metrics.jsonl", "stage_ends"),    # 04: loss curves, stage_end_model
    "pretrain_control": ("FINGERPRINT", "metrics.jsonl", "checkpoints"),  # 04: run_control reloads
}                                        # the control from its newest checkpoint (only that one is packed)
LEFT_OUT = {"eval", "report",            # recomputed by notebook 10
            "grpo"}                      # GRPO runs' working folders and their shared start-of-run
#                                          evaluations: the finished runs (rl/, ablations/…) hold what notebooks read
MARKERS = (MARKER, "FINGERPRINT", "manifest.json")   # a folder holding one is an artifact folder
KINDS = {                                # artifact folder -> its entry in FORMAT; the GRPO runs
    "corpus": "corpus", "corpus/packed": "packed", "tokenizer": "tokenizer",  # (rl/, rl_zero/,
    "base": "base", "pretrain": "base", "pretrain_control": "base",          # ablations/..,
    "problems": "problems", "sft/data": "sft_data",                           # seamless/..) "rl"
    "sft/full": "sft", "sft/lora": "sft", "sft/light": "sft"}
EXPECTED = (*KINDS, "rl", "rl_zero")     # what the notebooks build for a profile


# ---- what an artifact folder should hold in this checkout --------------------------------------

def expected_fingerprint(profile, name: str, folder: Path) -> tuple[str, str] | None:
    """(FORMAT key, fingerprint) that this checkout's code computes for the artifact folder
    `name` (relative to runs/<profile>/), or None for a folder that carries no fingerprint."""
    from .data.corpus import corpus_fingerprint
    from .data.mixture import packed_fingerprint
    from .rl.runs import rl_fingerprint
    from .tasks.problems import problems_key
    from .tokenizer import tokenizer_fingerprint
    from .train.pretrain import base_fingerprint
    from .train.sft import sft_data_fingerprint, sft_fingerprint

    kind = KINDS.get(name)
    if kind == "sft":
        return kind, sft_fingerprint(profile, name.split("/")[1])
    if kind is not None:
        compute = {"corpus": corpus_fingerprint, "packed": packed_fingerprint, "tokenizer": tokenizer_fingerprint,
                   "base": base_fingerprint, "problems": problems_key, "sft_data": sft_data_fingerprint}[kind]
        return kind, compute(profile)
    call = _read_json(Path(folder) / MARKER).get("call")
    if call is not None:                       # a GRPO run: BUILD.json keeps its arguments
        return "rl", rl_fingerprint(profile, **call)
    return None


def recorded_fingerprint(folder: Path) -> str | None:
    """The fingerprint an artifact folder was built with (BUILD.json, a run's FINGERPRINT, or
    the problems' manifest key), or None."""
    folder = Path(folder)
    if (folder / "FINGERPRINT").is_file():
        return (folder / "FINGERPRINT").read_text().strip()
    return _read_json(folder / MARKER).get("fingerprint") or _read_json(folder / "manifest.json").get("key")


def status(profile, runs_root: str | Path | None = None) -> dict[str, str]:
    """{artifact folder: "current" | "stale: <reason>" | "missing" | "unchecked"} for runs/<profile>/.

    "current" is what the notebooks' `ensure_*` functions reuse as it is; they rebuild a stale
    or missing one. "unchecked": a folder the kit keeps no fingerprint for.
    """
    profile = as_profile(profile)
    root = runs_dir(profile.name, runs_root)
    names = sorted(set(EXPECTED) | set(artifact_folders(root)))
    result = {}
    for name in names:
        folder = root / name
        recorded = recorded_fingerprint(folder)
        if not folder.is_dir() or (recorded is None and name in EXPECTED):
            result[name] = "missing"
            continue
        expected = expected_fingerprint(profile, name, folder)
        if expected is None:
            result[name] = "unchecked"
        elif expected[1] == recorded:
            result[name] = "current"
        else:
            result[name] = (f"stale: built with fingerprint {recorded}, this checkout's profile "
                            f"{profile.name!r} gives {expected[1]} (other settings, or format "
                            f"{expected[0]} {FORMAT[expected[0]]} changed)")
    return result


def artifact_folders(profile_dir: Path, outermost: bool = False) -> list[str]:
    """The artifact folders under `profile_dir` (relative, '/'-separated, sorted): those holding
    a marker; with `outermost`, not those inside another (corpus/ holds corpus/packed/)."""
    profile_dir = Path(profile_dir)
    if not profile_dir.is_dir():
        return []
    found = sorted({p.parent.relative_to(profile_dir).as_posix() for m in MARKERS
                    for p in profile_dir.rglob(m) if p.parent != profile_dir})
    found = [f for f in found if not any(part.startswith(".") for part in f.split("/"))]
    if outermost:
        found = [f for f in found if not any(f.startswith(other + "/") for other in found)]
    return found


# ---- pack --------------------------------------------------------------------------------------

def packed_files(profile_dir: Path, notebooks: bool = False) -> list[str]:
    """The files `pack` takes from `profile_dir`, relative and '/'-separated, sorted."""
    from .train.checkpoint import checkpoints

    profile_dir = Path(profile_dir)
    runs = {p.parent for p in profile_dir.rglob("FINGERPRINT")}
    files = []
    for path in sorted(profile_dir.rglob("*")):
        rel = path.relative_to(profile_dir)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue                                   # folders; builds in progress
        if path.name.startswith("cache-") and path.suffix == ".arrow":
            continue                                   # datasets' caches (of a shuffle, a map)
        if rel.parts[0] in LEFT_OUT or (rel.parts[0] == "notebooks" and not notebooks):
            continue
        run = next((r for r in runs if r in path.parents), None)
        if run is not None:
            inside = path.relative_to(run).parts
            wanted = RUN_FILES.get(run.relative_to(profile_dir).as_posix(), ())
            if inside[0] not in wanted:
                continue
            if inside[0] == "checkpoints" and inside[1] != checkpoints(run / "checkpoints")[0].name:
                continue                               # only the newest checkpoint
        files.append(rel.as_posix())
    return files


def pack(profile: str, runs_root: str | Path | None = None, out: str | Path | None = None,
         notebooks: bool = False) -> Path:
    """Write runs/<profile>/'s artifacts into one archive with a manifest; returns its path."""
    from importlib.metadata import PackageNotFoundError, version

    from .train.checkpoint import _sha256

    profile = as_profile(profile)
    root = runs_dir(profile.name, runs_root)
    files = packed_files(root, notebooks)
    if not artifact_folders(root):
        raise ValueError(f"{root} holds no artifacts to pack: build them first, e.g. with "
                         f"`mimo-lite notebooks --profile {profile.name}`.")
    try:
        kit = version("mimo-lite")
    except PackageNotFoundError:
        kit = "unknown"
    manifest = {
        "layout": LAYOUT, "kit": kit, "profile": profile.name, "format": FORMAT,
        "artifacts": {name: recorded_fingerprint(root / name) for name in artifact_folders(root)
                      if any(f"{name}/{marker}" in files for marker in MARKERS)},
        "files": {name: {"bytes": (root / name).stat().st_size, "sha256": _sha256(root / name)}
                  for name in files},
    }
    out = Path(out) if out else Path(f"mimo-lite-{profile.name}.tar.gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    with tarfile.open(tmp, "w:gz") as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name in files:
            tar.add(root / name, arcname=f"{profile.name}/{name}", recursive=False)
    tmp.replace(out)
    return out


# ---- unpack ------------------------------------------------------------------------------------

def read_manifest(archive: str | Path) -> dict:
    """The manifest of a pack, checked against this checkout (layout, profile, FORMAT)."""
    archive = Path(archive)
    if not archive.is_file():
        raise ValueError(f"{archive} does not exist: give the path of a file made by `mimo-lite pack`.")
    try:
        with tarfile.open(archive, "r:*") as tar:
            manifest = json.load(tar.extractfile(MANIFEST))
    except (tarfile.TarError, KeyError, ValueError, OSError):
        raise ValueError(f"{archive} is not a mimo-lite pack (no readable {MANIFEST}): make one "
                         f"with `mimo-lite pack --profile NAME`.") from None
    if manifest.get("layout") != LAYOUT:
        raise ValueError(f"{archive} has pack layout {manifest.get('layout')}, this kit reads layout "
                         f"{LAYOUT}: pack it again with this version of the kit.")
    load_profile(manifest["profile"])                 # an unknown profile stops with its own message
    for key, number in manifest["format"].items():
        packed = [name for name in manifest["artifacts"] if KINDS.get(name, "rl") == key]
        if packed and FORMAT.get(key) != number:
            name = packed[0]
            raise ValueError(f"{archive} holds {name}/ in format {key} {number}, but this checkout "
                             f"(kit {manifest['kit']} packed it) reads format {key} {FORMAT.get(key)}: "
                             f"pack it again from a checkout of this kit version, or let the "
                             f"notebooks build it here.")
    return manifest


def unpack(archive: str | Path, runs_root: str | Path | None = None) -> dict[str, str]:
    """Check `archive` whole, then move its artifacts into runs/<profile>/, one folder at a time;
    returns `status` of each artifact folder it brought."""
    archive = Path(archive)
    manifest = read_manifest(archive)
    profile = load_profile(manifest["profile"])
    root = runs_dir(profile.name, runs_root)
    root.mkdir(parents=True, exist_ok=True)
    stage = root / f".unpack-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        _extract_checked(archive, manifest, stage)
        staged = stage / profile.name
        folders = artifact_folders(staged, outermost=True)
        for name in folders:                          # each artifact folder swapped in whole
            _swap(staged / name, root / name)
        for name in manifest["files"]:                # loose files (executed notebooks)
            if not any(name.startswith(f + "/") for f in folders):
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged / name, root / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    now = status(profile, runs_root)
    return {name: now[name] for name in manifest["artifacts"]}


def _extract_checked(archive: Path, manifest: dict, stage: Path) -> None:
    """Write every file of `archive` under `stage`, refusing unsafe names and files whose size or
    SHA-256 differs from the manifest."""
    prefix = manifest["profile"] + "/"
    seen = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = member.name
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or name.startswith("/") or "\\" in name:
                raise ValueError(f"{archive} holds the member {name!r}, which points outside the runs "
                                 f"folder: it was not made by `mimo-lite pack`, so it is not unpacked.")
            if name == MANIFEST or member.isdir():
                continue
            relative = name[len(prefix):] if name.startswith(prefix) else None
            if not member.isfile() or relative not in manifest["files"]:
                raise ValueError(f"{archive} holds {name!r}, which its manifest does not list as a "
                                 f"file: it was altered after packing, so it is not unpacked.")
            expect = manifest["files"][relative]
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
            if digest.hexdigest() != expect["sha256"] or target.stat().st_size != expect["bytes"]:
                raise ValueError(f"{relative} in {archive} does not match the SHA-256 in its manifest "
                                 f"(the archive is damaged or was altered): fetch or pack it again.")
            seen.add(relative)
    missing = sorted(set(manifest["files"]) - seen)
    if missing:
        raise ValueError(f"{archive} lacks {missing[0]} (and {len(missing) - 1} more) that its manifest "
                         f"lists: the archive is incomplete, fetch or pack it again.")


def _swap(new: Path, folder: Path) -> None:
    """Put `new` in place of `folder` by renames: the old folder, or the new one, is whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}

