"""File I/O shared by every layer: finding inputs, writing outputs safely.

Two sections, each owned by its own helpers:
    discovery / stem matching   which files a folder, glob or list names, and how they pair up
    writing                     atomic files and folders, and the overwrite check

Imports nothing of semsynth but core.errors.
"""

import contextlib
import json
import os
import shutil
import uuid

from core.errors import UserError, UserFileNotFoundError

# ==============================================================================================
# Discovery / stem matching: which files a folder or list names, and how they pair up
# ==============================================================================================

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_NAMED = 5  # how many unmatched or missing files an error message lists


class InputError(UserError):
    """An input folder, file list or file is unusable; the message names the culprit.

    datasets/ knows it as DatasetError (and InputNotFoundError as DatasetNotFoundError).
    """


class InputNotFoundError(InputError, UserFileNotFoundError):
    """An input folder or file does not exist (catchable as FileNotFoundError too)."""


def list_some(names) -> str:
    """'a, b, c, d, e, ... (3 more)': the first few names, for an error message."""
    names = list(names)
    shown = ", ".join(names[:_NAMED])
    return shown + (f", ... ({len(names) - _NAMED} more)" if len(names) > _NAMED else "")


def find_files(directory, suffixes, where: str, *, recursive: bool = True) -> dict[str, str]:
    """{stem: path} of the files under `directory` whose names end in one of `suffixes`.

    The stem is the path relative to `directory` without the suffix, with "/" separators, so
    images and labels in matching sub-folders pair up. Suffixes match case-insensitively
    (".jpg" finds "x.JPG"); hidden files and folders (".DS_Store", "._x.jpg") are skipped.
    Folders and files are visited in sorted order.

    Args:
        directory: the folder to search.
        suffixes: file extensions (".png") or longer suffixes ("_leftImg8bit.png").
        where: how error messages name the folder, e.g. "--image_dir=data/images".
        recursive: also search sub-folders.

    Raises:
        InputNotFoundError: `directory` is not a folder.
        InputError: two files share a stem (e.g. x.jpg and x.png).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise InputNotFoundError(f"{where} does not exist or is not a folder")
    suffixes = tuple(suffix.lower() for suffix in suffixes)
    found: dict[str, str] = {}
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            suffix = next((s for s in suffixes if name.lower().endswith(s)), None)
            if name.startswith(".") or suffix is None:
                continue
            path = os.path.join(folder, name)
            stem = os.path.join(folder, name[: len(name) - len(suffix)])
            key = os.path.relpath(stem, directory).replace(os.sep, "/")
            if key in found:
                raise InputError(
                    f"{where}: two files share the stem {key!r}: {found[key]} and {path}"
                )
            found[key] = path
    return found


def match_stems(
    images: dict[str, str], labels: dict[str, str], image_where: str, label_where: str
) -> list[tuple[str, str]]:
    """Pairs two {stem: path} maps (from find_files), sorted by stem.

    Args:
        images, labels: {stem: path} of each side.
        image_where, label_where: how error messages name each side's folder.

    Raises:
        InputError: naming (a few of) the stems without a partner, on either side.
    """
    only_images = sorted(set(images) - set(labels))
    only_labels = sorted(set(labels) - set(images))
    problems = []
    if only_images:
        problems.append(
            f"{len(only_images)} image(s) in {image_where} have no label map in "
            f"{label_where}: {list_some(only_images)}"
        )
    if only_labels:
        problems.append(
            f"{len(only_labels)} label map(s) in {label_where} have no image in "
            f"{image_where}: {list_some(only_labels)}"
        )
    if problems:
        raise InputError("; ".join(problems))
    return [(images[stem], labels[stem]) for stem in sorted(images)]


def read_json_list(path, where: str):
    """The parsed contents of a JSON file list (the caller checks its shape).

    Raises:
        InputNotFoundError: `path` is not a file. InputError: not valid JSON.
    """
    if not os.path.isfile(path):
        raise InputNotFoundError(f"{where} does not exist")
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{where}: not valid JSON ({error})") from None


def resolve_listed(entries, list_path, where: str) -> list[str]:
    """The files a list names, relative paths taken from the list's folder; all must exist.

    Args:
        entries: path strings as written in the list (absolute or relative).
        list_path: the list file.
        where: how error messages name the list, e.g. "--train_list=train.json".

    Returns:
        The normalised paths, in list order.

    Raises:
        InputNotFoundError: naming how many and (a few of) the listed files that do not exist.
    """
    folder = os.path.dirname(os.path.abspath(list_path))
    paths = [os.path.normpath(os.path.join(folder, entry)) for entry in entries]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise InputNotFoundError(
            f"{where}: {len(missing)} listed file(s) do not exist: {list_some(missing)}"
        )
    return paths


# ==============================================================================================
# Writing: atomic files and folders, overwrite checks
# ==============================================================================================


class OutputExistsError(UserError, FileExistsError):
    """An output the user asked for exists already and --overwrite was not given."""


def check_overwrite(
    paths, overwrite: bool, *, flag: str | None = None, remedy: str | None = None, note: str = ""
) -> None:
    """Refuses outputs that exist already, unless `overwrite`; call it before any slow work.

    Args:
        paths: one path or several; empty ones (an optional output not asked for) are skipped.
        overwrite: the value of --overwrite.
        flag: the flag that named the output, e.g. "--output": the message then reads
            "--output=PATH already exists" (one path).
        remedy: what else the user can do, after "pass --overwrite or " (default: another
            `flag`, or another output directory).
        note: said after "already exist(s)", e.g. " (it may hold your annotations)".

    Raises:
        OutputExistsError: naming (a few of) the existing paths and --overwrite.
    """
    if paths is None or isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    existing = [os.fspath(path) for path in paths if path and os.path.exists(path)]
    if not existing or overwrite:
        return
    names = f"{flag}={existing[0]}" if flag else list_some(existing)
    verb = "already exists" if len(existing) == 1 else "already exist"
    remedy = remedy or (f"another {flag}" if flag else "another output directory")
    raise OutputExistsError(f"{names} {verb}{note}; pass --overwrite or {remedy}")


def check_overwrite_dir(
    folder,
    overwrite: bool,
    *,
    flag: str | None = None,
    holds: str = "files",
    remedy: str | None = None,
) -> bool:
    """Refuses a non-empty output folder unless `overwrite`.

    Args:
        folder: the output folder (absent or empty is fine).
        overwrite: the value of --overwrite.
        flag: the flag that named it ("--output_dir"), for the message.
        holds: what the folder holds, e.g. "results" ("--output_dir=D already holds results").
        remedy: after "pass --overwrite or " (default: another `flag`, or another folder).

    Returns:
        True when the folder holds files (and overwrite allows replacing them): the caller
        removes what it wrote before, never anything else.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder) or not os.listdir(folder):
        return False
    if not overwrite:
        name = f"{flag}={folder}" if flag else folder
        remedy = remedy or (f"another {flag}" if flag else "another folder")
        raise OutputExistsError(f"{name} already holds {holds}; pass --overwrite or {remedy}")
    return True


def _temporary_name(path: str) -> str:
    """A hidden, unique name beside `path` (same folder: os.replace stays one rename)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", encoding: str | None = "utf-8"):
    """Opens a temporary file beside `path`; on success it replaces `path` in one rename.

    A reader never sees half a file and a crash keeps the old one. The folder is created.

    Example:
        with atomic_write("out/result.json") as file:
            json.dump(result, file)
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = _temporary_name(path)
    # os.open with O_EXCL: a fresh file with the umask's permissions (mkstemp's are 0600).
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, mode, encoding=None if "b" in mode else encoding) as file:
            yield file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_json_atomic(
    path, obj, *, indent: int | None = 2, sort_keys: bool = False, newline: bool = True
) -> str:
    """Writes `obj` as JSON through atomic_write; returns the path."""
    with atomic_write(path) as file:
        json.dump(obj, file, indent=indent, sort_keys=sort_keys)
        if newline:
            file.write("\n")
    return os.fspath(path)


@contextlib.contextmanager
def atomic_directory(path):
    """Yields a temporary folder beside `path`; on success it replaces `path` (a folder).

    Used for SavedModels: an interrupted export never leaves half a model at `path`. The
    temporary folder is <path>.tmp (a stale one from a crash is removed first); an existing
    `path` is moved aside, replaced, then deleted.

    Example:
        with atomic_directory("runs/x/export") as folder:
            archive.write_out(folder)
    """
    path = os.fspath(path).rstrip("/" + os.sep) or os.fspath(path)
    temporary = path + ".tmp"
    if os.path.exists(temporary):
        shutil.rmtree(temporary)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    try:
        yield temporary
        if not os.path.isdir(temporary):
            raise FileNotFoundError(f"nothing was written to {temporary}")
        if os.path.exists(path):
            previous = _temporary_name(path)
            os.replace(path, previous)
            os.replace(temporary, path)
            shutil.rmtree(previous)
        else:
            os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        raise


def save_image_atomic(image, path, **params) -> str:
    """Saves an image (a PIL image or a uint8 array) through atomic_write; returns the path.

    The format follows the extension (".png", ".jpg", ...); `params` go to PIL's save, e.g.
    quality=95. A reader never sees half an image, and a kill mid-write leaves no file.
    """
    from PIL import Image

    path = os.fspath(path)
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    extension = os.path.splitext(path)[1].lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None:
        raise ValueError(f"{path}: no image format for the extension {extension!r}")
    with atomic_write(path, "wb") as file:
        image.save(file, format=image_format, **params)
    return path


# ==============================================================================================
# Progress of a folder of outputs: what is complete, so that a rerun resumes
# ==============================================================================================

PROGRESS_FILE = ".semsynth_progress.jsonl"


class OutputProgress:
    """What a command that writes a folder of outputs has completed, so a rerun can resume.

    The folder holds a hidden JSON-lines file, PROGRESS_FILE: the first line the run's
    settings, then one line per completed unit of work ({"done": [paths relative to the folder],
    ...the caller's fields}), and {"finished": true} at the end. Each output is written
    atomically before its line is appended, so a listed output is complete; a line torn by a
    kill is ignored. Paths are relative: the folder can be moved.

    Use `OutputProgress.load(folder, settings, overwrite)`, then:
        resuming (a progress file of the same settings, no overwrite): skip what `done(path)`
            says is complete; outputs written but not yet listed are the killed run's and are
            rewritten.
        not resuming: the caller checks for existing outputs as before (they are not ours),
            then calls start(). With overwrite the old progress is dropped (start over).
        a progress file of other settings without overwrite: load raises OutputExistsError
            naming the settings that differ.

    Example:
        progress = OutputProgress.load(out_dir, {"seed": 0}, overwrite, flag="--output_dir")
        if not progress.resuming:
            check_overwrite(outputs, overwrite)
        progress.start()
        for path in outputs:
            if not progress.done(path):
                save_image_atomic(image, path)
                progress.add([path])
        progress.finish()
    """

    def __init__(self, folder, settings, resuming, records, finished):
        self.folder = os.fspath(folder)
        self.settings = settings
        self.resuming = resuming  # True: a rerun of an unfinished (or finished) run
        self.records = records  # the completed units' lines, in order (resuming)
        self.finished = finished  # the earlier run finished (resuming)
        self._done = {path for record in records for path in record.get("done", ())}
        self.path = os.path.join(self.folder, PROGRESS_FILE)

    @classmethod
    def load(cls, folder, settings, overwrite: bool, *, flag: str = "--output_dir"):
        """Reads folder's progress file; see the class docstring for the three cases."""
        folder = os.fspath(folder)
        settings = json.loads(json.dumps(settings))  # as stored: lists, not tuples
        path = os.path.join(folder, PROGRESS_FILE)
        if overwrite or not os.path.isfile(path):
            return cls(folder, settings, False, [], False)
        header, records, finished = _read_progress(path)
        if header != settings:
            differ = sorted(
                key
                for key in set(header or {}) | set(settings)
                if (header or {}).get(key) != settings.get(key)
            )
            shown = ", ".join(
                f"{key}: {(header or {}).get(key)!r} then, {settings.get(key)!r} now"
                for key in differ[:_NAMED]
            )
            raise OutputExistsError(
                f"{flag}={folder} is not empty: it holds the outputs of a run with other "
                f"settings ({shown}); "
                f"pass --overwrite to start over, or another {flag}"
            )
        return cls(folder, settings, True, records, finished)

    def _relative(self, path) -> str:
        return os.path.relpath(os.fspath(path), self.folder).replace(os.sep, "/")

    def done(self, path) -> bool:
        """Whether `path` (an output under the folder) was completed by an earlier run."""
        relative = self._relative(path)
        return relative in self._done and os.path.exists(os.path.join(self.folder, relative))

    def start(self) -> None:
        """Creates the folder and the progress file (fresh, or the resumed run's records)."""
        os.makedirs(self.folder, exist_ok=True)
        # Resuming: written anew without a line torn by the kill, and not finished (yet).
        self._rewrite()

    def _rewrite(self) -> None:
        """Writes the settings and the records (not `finished`) through a temporary file."""
        with atomic_write(self.path) as file:
            file.write(json.dumps({"settings": self.settings}) + "\n")
            for record in self.records:
                file.write(json.dumps(record) + "\n")
        self.finished = False

    def add(self, paths, **fields) -> None:
        """Records outputs as complete (after they were written), with the caller's fields."""
        record = {"done": [self._relative(path) for path in paths], **fields}
        if self.finished:
            self._rewrite()
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        self.records.append(record)
        self._done.update(record["done"])

    def finish(self) -> None:
        """Marks the run finished (the last line)."""
        if not self.finished:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(json.dumps({"finished": True}) + "\n")
            self.finished = True


def _read_progress(path):
    """(settings, records, finished) of a progress file; a torn last line is ignored."""
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    header, records, finished = None, [], False
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number >= len(lines) - 2:  # the last line, torn by a kill
                break
            raise InputError(f"{path}: line {number + 1} is not JSON; remove the file") from None
        if header is None:
            header = entry.get("settings") if isinstance(entry, dict) else None
            if header is None:
                raise InputError(f"{path}: the first line holds no settings; remove the file")
        elif entry.get("finished"):
            finished = True
        else:
            records.append(entry)
    return header, records, finished
