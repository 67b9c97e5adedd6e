"""Output safety: check an output path before the work, write files atomically, and never delete
or overwrite what cachesim did not write.

- `check_output_file(path, option)` and `check_output_dir(path, option, force)`: called by every
  command before it reads its trace, so a path that cannot be written (a missing or read-only
  folder, /sys, a full disk, a folder where a file is expected) is one CachesimError up front,
  not a traceback after the work.
- `atomic_path(path)` / `atomic_write(path, data)`: the one atomic writer (a uniquely named temp
  file in the same folder, then os.replace); files get the user's usual mode (0o666 & ~umask).
- `output_dir(path, option, force=..., command=...)`: a folder of outputs (a report, plots).
  The files are written into a staging folder, then moved into place: a new folder is renamed
  into place whole; an existing one (`-o .` included) gets each file moved in atomically. The
  folder is marked with `.cachesim`, a JSON file listing the files cachesim wrote there.

The folder rule: a missing or empty folder, or one holding our marker, may be written; the files
the marker lists for this command may be replaced (and are removed when a new run of it no
longer writes them); another command's files in the folder are kept, and writing one of their
names is refused. A
non-empty folder without the marker is the user's: refused, unless `force`, which writes our
files beside the user's. Even with `force`, a file of the user's (not listed in the marker) is
never overwritten or deleted: a name clash is refused. A report folder written before the marker
existed (its results.json carries cachesim's `meta`) counts as marked for its four report files
(never its PNGs: a user's plot may sit there). `check_output_file(..., inputs=)` refuses an
output at a command's input trace or inside an input folder.

The file rule: a single-file output (`sweep -o`, `mrc -o`, `convert IN OUT`, a --plot) may
replace an existing file only if cachesim wrote it and it is unchanged since. `atomic_path`
records each file it writes (path, device, inode, size, mtime) in the user's registry
(`registry_path`: $CACHESIM_STATE_DIR, else $XDG_STATE_HOME/cachesim, else
~/.local/state/cachesim); `check_output_file` refuses any other existing file, in one line
before the work. A file copied in, edited since, or written before the registry existed counts
as the user's: remove it or choose another name. A registry that cannot be written only makes
the rule stricter (nothing is recorded, so nothing is replaced).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import CachesimError

MARKER = ".cachesim"
_UMASK: int | None = None


def umask() -> int:
    """The process's umask, read once (os.umask has no getter: set 0, then restore)."""
    global _UMASK
    if _UMASK is None:
        mask = os.umask(0)
        os.umask(mask)
        _UMASK = mask
    return _UMASK


def file_mode() -> int:
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


def _why(err: OSError) -> str:
    return err.strerror or str(err)


def _probe(folder: Path, shown: str, option: str) -> None:
    """Create and remove a temp file in `folder`: catches read-only mounts, /proc, /sys and root
    squashing that os.access misses."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CachesimError(f"{option} {shown}: cannot write into folder {folder} (permission "
                            "denied); choose another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".cachesim-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise CachesimError(f"{option} {shown}: cannot write into folder {folder} "
                            f"({_why(err)}); choose another path") from None
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    if st.f_bavail == 0 and st.f_blocks > 0:
        raise CachesimError(f"{option} {shown}: no space left on the disk of {folder}; free "
                            "some space or choose another path")


def check_output_file(path, option: str = "-o", inputs=(), suffixes=None) -> Path:
    """Check that a file can be written at `path` (its folder exists and is writable, no folder
    is in the way, it is none of the command's `inputs` nor inside an input folder, nor an
    existing file cachesim did not write: the file rule above); with `suffixes`, that its name
    ends in one of them (the format the command writes follows the name);
    CachesimError naming `option` and the fix otherwise."""
    shown = str(path)
    if not shown.strip():
        raise CachesimError(f"{option}: empty path; give a file name")
    path = Path(path)
    for given in inputs:
        _not_an_input(path, given, option, shown)
    if path.is_dir():
        raise CachesimError(f"{option} {shown}: is a folder; give a file name to write")
    if suffixes and path.suffix.lower() not in suffixes:
        kinds = ", ".join(suffixes[:-1]) + " or " * (len(suffixes) > 1) + suffixes[-1]
        raise CachesimError(f"{option} {shown}: the format follows the name; give one ending in "
                            f"{kinds}")
    folder = path.parent
    if not folder.exists():
        if any(p.exists() and not p.is_dir() for p in folder.parents):
            raise CachesimError(f"{option} {shown}: {_first_file(folder)} is a file, not a "
                                "folder; choose another path")
        raise CachesimError(f"{option} {shown}: folder {folder} does not exist (create it "
                            "first)")
    if not folder.is_dir():
        raise CachesimError(f"{option} {shown}: {folder} is a file, not a folder; choose "
                            "another path")
    _probe(folder, shown, option)
    if (path.exists() or path.is_symlink()) and not written_by_cachesim(path):
        raise CachesimError(f"{option} {shown}: exists and cachesim did not write it (or it "
                            "changed since), so it is never replaced; remove it or choose "
                            "another name")
    return path


# -- the registry of files cachesim wrote --------------------------------------------------------
REGISTRY_MAX = 4000  # entries kept (the newest); an older output then counts as the user's


def registry_path() -> Path:
    """Where the files cachesim wrote are recorded (see the module's file rule)."""
    root = os.environ.get("CACHESIM_STATE_DIR")
    if not root:
        xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                              ".local", "state")
        root = os.path.join(xdg, "cachesim")
    return Path(root) / "written.json"


def _identity(path: Path) -> list[int] | None:
    """(device, inode, size, mtime in ns) of a regular file, not following a link; None else."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    import stat
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _key(path: Path) -> str:
    return os.path.join(os.path.realpath(path.parent), path.name)


def _load_registry(reg: Path) -> dict:
    try:
        data = json.loads(reg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if isinstance(data, dict) else {}


def written_by_cachesim(path) -> bool:
    """Whether `path` is a file cachesim wrote, unchanged since (`record_written`)."""
    path = Path(path)
    ident = _identity(path)
    return ident is not None and _load_registry(registry_path()).get(_key(path)) == ident


def changed_since_written(paths) -> set[Path]:
    """Those of `paths` that the registry holds as files cachesim wrote and that are no longer
    those files (replaced or edited since): the user's now, in a folder of cachesim's. One
    read of the registry for them all."""
    files = _load_registry(registry_path())
    return {p for p in map(Path, paths)
            if files.get(_key(p)) is not None and _identity(p) != files[_key(p)]}


def record_written(*paths) -> None:
    """Record `paths`, just written, as cachesim's (under a lock: pool workers write at once;
    one registry write for them all). Any failure to record is silent: the files then count as
    the user's (in a folder of cachesim's, as its marker says)."""
    idents = [(Path(p), _identity(Path(p))) for p in paths]
    idents = [(p, i) for p, i in idents if i is not None]
    reg = registry_path()
    if not idents:
        return
    try:
        import fcntl
        reg.parent.mkdir(parents=True, exist_ok=True)
        with open(reg.with_name(reg.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            files = _load_registry(reg)
            for path, ident in idents:
                files.pop(_key(path), None)
                files[_key(path)] = ident  # (last: the newest)
            if len(files) > REGISTRY_MAX:
                files = dict(list(files.items())[-REGISTRY_MAX:])
            fd, tmp = tempfile.mkstemp(prefix=".written.", suffix=".tmp", dir=reg.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"written_by": "cachesim", "files": files}, f)
            os.replace(tmp, reg)
    except (OSError, ImportError):
        pass


_TRACE_SUFFIXES = (".parquet", ".pq", ".npz", ".pt")  # what a folder trace's readers take


def _not_an_input(path: Path, given, option: str, shown: str) -> None:
    """Refuse an output at the input `given` (a file, or a file inside an input folder)."""
    if given is None or "://" in str(given):
        return
    src = Path(given)
    if not src.exists():
        return
    try:
        same = path.exists() and os.path.samefile(path, src)
        # (inside a folder trace: a file its readers would take as part of the trace)
        inside = src.is_dir() and path.suffix.lower() in _TRACE_SUFFIXES and Path(
            os.path.abspath(path)).is_relative_to(Path(os.path.abspath(src)))
    except OSError:
        return
    if same or inside:
        raise CachesimError(f"{option} {shown}: {'is' if same else 'is inside'} the input "
                            f"trace {given}; writing there would change the trace; choose another path")


def _first_file(folder: Path) -> Path:
    for p in reversed([folder, *folder.parents]):
        if p.exists() and not p.is_dir():
            return p
    return folder


def _read_marker(folder: Path) -> set[str] | None:
    """The names the marker lists (every command's), or None when the folder has no
    (readable) marker."""
    by = _marker_files(folder)
    return None if by is None else set().union(*by.values())


def _marker_files(folder: Path) -> dict[str, set[str]] | None:
    """{command: the names it wrote} of the folder's marker (a marker from before the
    per-command lists: its one command's), None without a (readable) marker."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        legacy = _legacy_report(folder)
        return None if legacy is None else {"report": legacy}
    if not isinstance(data, dict) or data.get("written_by") != "cachesim":
        return None

    def names(files) -> set[str]:
        return {str(n) for n in files or [] if "/" not in str(n)}
    by = data.get("by_command")
    if isinstance(by, dict):
        return {str(c): names(f) for c, f in by.items()}
    return {str(data.get("command", "")): names(data.get("files"))}


def _legacy_report(folder: Path) -> set[str] | None:
    """A report folder from before the marker: its results.json carries cachesim's `meta`.
    Of the report's other files, each is ours only if it shows it was written with that
    results.json (report.md and report.html carry its 'cachesim VERSION, CREATED' subtitle;
    results.parquet is Parquet): a user's file of the same name, or a PNG beside them, is not."""
    try:
        meta = json.loads((folder / "results.json").read_text(encoding="utf-8")).get("meta")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(meta, dict) or "cachesim_version" not in meta:
        return None
    stamp = f"cachesim {meta['cachesim_version']}, {meta.get('created', '')}"
    signs = {"report.md": f"_{stamp}".encode(), "report.html": f">{stamp}".encode()}
    ours = {"results.json"}
    for name, sign in signs.items():
        if sign in _head(folder / name, 1 << 18):
            ours.add(name)
    if _head(folder / "results.parquet", 4) == b"PAR1":
        ours.add("results.parquet")
    return ours


def _head(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


REPORT_FILES = ("report.html", "report.md", "results.json", "results.parquet")  # a report's own


def check_output_dir(path, option: str = "-o", force: bool = False, *, names=(),
                     command: str = "") -> Path:
    """Check that a folder of outputs may be written at `path` (see the module's rule): a file
    in the way, an unwritable place, a user's non-empty folder without `force`, or one of the
    `names` the `command` is sure to write clashing with a file of the user's or of another
    command's raise CachesimError, before the work. Missing parent folders are fine (they are
    created)."""
    shown = str(path)
    if not shown.strip():
        raise CachesimError(f"{option}: empty path; give a folder")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CachesimError(f"{option} {shown}: a file is in the way; give a folder (or remove "
                            "the file)")
    if path.is_dir():
        _probe(path, shown, option)
        entries = [e for e in os.listdir(path) if e != MARKER]
        if entries and _read_marker(path) is None and not force:
            raise CachesimError(f"{option} {shown}: folder is not empty and was not written by "
                                "cachesim; pass --force to write into it anyway (your files "
                                "are kept), or choose another path")
        if entries:
            _check_names(path, names, shown, option, command)
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CachesimError(f"{option} {shown}: {ancestor} is a file, not a folder; choose "
                            "another path")
    _probe(ancestor, shown, option)
    return path


@contextmanager
def atomic_path(path, option: str | None = None, record: bool = True):
    """Yield a temp path in the folder of `path`; when the block succeeds, give it the usual file
    mode and move it over `path` (os.replace), and record it as cachesim's (`record_written`;
    not with `record=False`, for the files of cachesim's own folders). An OSError (a full disk)
    is a CachesimError naming the path; the temp file never stays behind."""
    shown = str(path)
    where = f"{option} {shown}" if option else shown
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise CachesimError(f"{where}: folder {folder} does not exist (create it first)")
    if path.is_dir():
        raise CachesimError(f"{where}: is a folder; give a file name to write")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as err:
        raise CachesimError(f"{where}: cannot write into folder {folder} ({_why(err)})") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600
        os.replace(tmp, path)
        if record:
            record_written(path)
    except OSError as err:
        raise CachesimError(f"{where}: cannot write it ({_why(err)})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path, data, option: str | None = None) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically."""
    with atomic_path(path, option) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def _marker_text(command: str, names, by_command: dict | None = None) -> str:
    """The marker: every file cachesim wrote in the folder, and which command wrote which (a
    command rerun removes only its own earlier files)."""
    from .version import __version__
    by = {c: sorted(f) for c, f in (by_command or {}).items() if f}
    by[command] = sorted(names)
    return json.dumps({"written_by": "cachesim", "cachesim_version": __version__,
                       "command": command, "files": sorted(set().union(*map(set, by.values()))),
                       "by_command": by}, indent=1) + "\n"


@contextmanager
def output_dir(path, option: str = "-o", *, force: bool = False, command: str = ""):
    """Yield a staging folder to write the outputs into (plain files, no subfolders); when the
    block succeeds, move them into `path` under the folder rule of this module and mark it.
    On any error the staging folder is removed and `path` is as it was."""
    shown = str(path)
    check_output_dir(path, option, force)
    target = Path(os.path.abspath(path))
    existed = target.is_dir()
    try:
        if existed:
            staging = Path(tempfile.mkdtemp(prefix=".cachesim-tmp.", dir=target))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        raise CachesimError(f"{option} {shown}: cannot create the folder ({_why(err)}); choose "
                            "another path") from None
    try:
        yield staging
        names = sorted(os.listdir(staging))
        for n in names:
            if not (staging / n).is_file() or n == MARKER:
                raise RuntimeError(f"output_dir: {n} is not a plain output file")
            os.chmod(staging / n, file_mode())
        if existed:
            _move_into(staging, target, names, shown, option, command)
        else:
            (staging / MARKER).write_text(_marker_text(command, names), encoding="utf-8")
            os.chmod(staging / MARKER, file_mode())
            os.chmod(staging, dir_mode())  # mkdtemp makes 0700
            try:
                os.rename(staging, target)
            except OSError as err:
                raise CachesimError(f"{option} {shown}: cannot move the finished folder into "
                                    f"place ({_why(err)}; did something else create it "
                                    "meanwhile?)") from None
            record_written(*(target / n for n in names))
    except OSError as err:
        raise CachesimError(f"{option} {shown}: cannot write it ({_why(err)})") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _check_names(target: Path, names, shown: str, option: str, command: str) -> dict:
    """CachesimError when writing `names` into the folder would replace a file of the user's
    or of another command's output; else the marker's {command: names}."""
    by = _marker_files(target) or {}
    ours = set().union(*by.values())
    clashes = [n for n in names if (target / n).exists() and n not in ours]
    if clashes:
        raise CachesimError(f"{option} {shown}: {', '.join(clashes)} in it was not written by "
                            "cachesim and is never overwritten; move it away or choose another "
                            "path")
    changed = sorted(p.name for p in changed_since_written(
        target / n for n in names if (target / n).exists()))
    if changed:
        raise CachesimError(f"{option} {shown}: {', '.join(changed)} in it changed since "
                            "cachesim wrote it, so it is yours now and never overwritten; move "
                            "it away or choose another path")
    # (a marker that names no command, the oldest kind, is any command's)
    theirs = {n: c for c, f in by.items() if c not in (command, "") for n in f}
    clashes = [n for n in names if n in theirs and (target / n).exists()]
    if clashes:
        raise CachesimError(f"{option} {shown}: {', '.join(clashes)} in it belongs to `cachesim "
                            f"{theirs[clashes[0]] or 'another command'}`'s output, which this "
                            "would change; choose another path")
    return by


def _move_into(staging: Path, target: Path, names, shown: str, option: str,
               command: str) -> None:
    by = _check_names(target, names, shown, option, command)
    for n in names:
        os.replace(staging / n, target / n)
    record_written(*(target / n for n in names))
    # this command's files from an earlier run, not written now (another command's stay: a
    # report and analyze's plots may share a folder); one changed since is the user's: kept,
    # and no longer named in the marker
    stale = [target / n for n in sorted(by.get(command, set()) - set(names))]
    users = changed_since_written(stale)
    for p in stale:
        if p.is_file() and not p.is_symlink() and p not in users:
            p.unlink()
    others = {c: f - set(names) for c, f in by.items() if c != command}
    with atomic_path(target / MARKER, option, record=False) as tmp:
        tmp.write_text(_marker_text(command, names, others), encoding="utf-8")


OUTPUT_SUFFIXES = (".parquet", ".csv", ".json")  # what a results table can be written as


def jsonable(obj):
    """`obj` with what `json.dumps` cannot write made plain, recursively: dict keys as str,
    tuples as lists, NumPy arrays and scalars as Python values (`tolist`), a polars DataFrame as
    its rows (`to_dicts`), and NaN or infinite floats as None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "to_dicts"):
        return jsonable(obj.to_dicts())
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_table(table, path) -> None:
    """Write `table` to .parquet, .csv or .json atomically (`cachesim.files.atomic_path`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise CachesimError(f"-o {path}: write .parquet, .csv or .json")
    with atomic_path(path, "-o") as tmp:
        if suffix == ".parquet":
            table.write_parquet(tmp)
        elif suffix == ".csv":
            table.write_csv(tmp)
        else:
            table.write_json(tmp)
