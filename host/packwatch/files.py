"""Files written by packwatch commands: no command ever destroys a user's file.

* An output that is one of the command's inputs (the same path, `./x`, a symlink to it, a hard
  link: ``os.path.samefile``) is refused before anything is written.
* Outputs are written to a temporary file in the same folder and renamed over the target
  (``os.replace``) only once complete: a failed or killed command leaves the old file, never half
  a new one.
* Captures and logs of `packwatch log` are only ever created new (``O_EXCL``), never reopened.
"""
import contextlib
import os
import tempfile


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False  # one of them does not exist (or is not a path, e.g. the model name 'lfp')


def check_output(out, inputs=()):
    """Raise ValueError when ``out`` cannot be written or writing it would destroy an input."""
    for inp in inputs:
        if inp is not None and same_file(out, inp):
            raise ValueError("refusing to write %s: it is the input %s (choose another output file)" % (out, inp))
    if os.path.isdir(out):
        raise ValueError("%s is a folder: give the output a file name" % out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError("cannot write %s: folder %s does not exist" % (out, folder))


@contextlib.contextmanager
def atomic_output(path, inputs=()):
    """``with atomic_output(out, [inputs]) as tmp:`` write the file ``tmp`` (same folder and extension
    as ``out``); it replaces ``out`` when the block ends without an exception, else it is removed."""
    path = os.fspath(path)
    check_output(path, [os.fspath(i) if isinstance(i, os.PathLike) else i for i in inputs])
    target = os.path.realpath(path)  # through a symlink: the link stays, the file it names is replaced
    stem, ext = os.path.splitext(os.path.basename(target))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % stem, suffix=ext, dir=os.path.dirname(target))
    os.close(fd)
    try:
        yield tmp
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)  # mkstemp makes 0600: give it what a plain open() would have
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def create_new(path):
    """Create ``path`` empty, failing with FileExistsError if anything is already there."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
