"""The exceptions msenas raises: the library's errors, each with the CLI's one-line message."""


class MsenasError(Exception):
    """Every error msenas raises."""


class InputError(MsenasError, ValueError):
    """A file, field or value that is not allowed (the CLI exits 2 with this line)."""


class GpuError(MsenasError, RuntimeError):
    """A GPU problem: no adapter, a missing limit, out of memory, device lost."""


class DivergedError(MsenasError, ArithmeticError):
    """Training met a non-finite loss or weight and stopped."""


class PlotError(MsenasError, RuntimeError):
    """A chart could not be drawn."""


class FileError(MsenasError, OSError):
    """A file could not be read or written."""
