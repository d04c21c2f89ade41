"""One exception family for mistakes a user can fix; the CLI turns it into one line + exit 1."""


def one_line(name: object) -> str:
    """A file name as an error message quotes it: on one line whatever characters it holds (a
    newline in a name would otherwise split its error in two)."""
    text = str(name)
    return text if text.isprintable() else repr(text)[1:-1]


def unexpected_message(exc: BaseException) -> str:
    """One line for an exception no check foresaw. Memory running out is named as such (torch
    raises it as a RuntimeError: "DefaultCPUAllocator: can't allocate memory", "CUDA out of
    memory"); anything else is a bug, whose traceback SNN_DEBUG=1 shows."""
    text = next((line for line in str(exc).splitlines() if line.strip()), "")
    if isinstance(exc, MemoryError) or "allocate memory" in text or "out of memory" in text:
        return f"out of memory: {text or 'no detail'}"
    return (
        f"internal error ({type(exc).__name__}: {text}); please report it with the command "
        "that caused it (SNN_DEBUG=1 shows the traceback)"
    )


def first_of(problems: list[str]) -> str:
    """The problems of one thing (a file, a saved run) as one line: the first, and how many
    more there are."""
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more problem{'s' * (more > 1)})" if more > 0 else "")


class SnnWarning(UserWarning):
    """A caution for the user (work goes on); the CLI shows it as one `warning:` line."""


class SnnError(Exception):
    """A user-facing error: bad input, missing file, wrong checkpoint, unknown model."""


class DataError(SnnError):
    """MNIST files are missing, corrupt or truncated."""


class CheckpointError(SnnError):
    """A file is not a usable snncli checkpoint."""


class ImageError(SnnError):
    """An image could not be read or holds no digit."""


class OptionError(SnnError):
    """An option that may not be given here: a usage error (exit code 2), in one line."""

    exit_code = 2


class ConfigError(SnnError):
    """Settings out of range or of the wrong type (one problem per line)."""
