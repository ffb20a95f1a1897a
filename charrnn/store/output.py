"""A file charrnn writes where it is told to (viz's page, plot's PNG, sample's text): never over a file
charrnn did not write, never through a link, whole or not at all, and checked before the work.

Every such file carries charrnn's mark near its start (the page a `<meta name="generator">`
naming charrnn, the PNG a text chunk, the text a first line naming its model), by which charrnn knows it may replace it. Anything
else at the path is refused in one line before any work: a user's file or a symbolic link
unless --force (which replaces the link itself, never its target), a folder, a pipe or a
device always. The folder must exist and take a new file (a read-only or full disk is found
then, not after the work), and an error while writing is one line too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from charrnn.display import printable
from charrnn.errors import ConfigError, OptionError
from charrnn.settings.spelling import spelled
from charrnn.store.files import create_new, not_a_file, open_to_read, temporary_name, write_atomic

MARK_BYTES = 8192  # how far into a file its mark is looked for: every mark lies in its first few hundred
PROBE_BYTES = 4096  # written (and removed) before the work: a full disk refuses a write, not a new name


@dataclass(frozen=True)
class OutputFile:
    """Where a command writes its file, and how charrnn's own files of that kind are marked."""

    path: Path
    mark: bytes  # what every file of this kind charrnn writes holds in its first MARK_BYTES
    force: bool = False  # replace a file charrnn did not write, or a link, all the same

    def check(self) -> None:
        """Refuse, before any work, an output that may not or cannot be written (see the module)."""
        folder = self.path.parent
        if not folder.is_dir():
            raise OptionError(spelled("output"), f"is in a folder that does not exist: {printable(folder)}")
        odd = not_a_file(self.path)
        if odd is not None and not (self.force and stat.S_ISLNK(odd.mode or 0)):
            force = (
                f" (give {spelled('force', True)} to replace the link; its target is left as it is)"
                if stat.S_ISLNK(odd.mode or 0)
                else ""
            )
            raise ConfigError(f"{printable(self.path)} {odd.what}, so charrnn will not replace it{force}")
        if odd is None and os.path.lexists(self.path) and not self.force and not self._marked():
            raise ConfigError(
                f"{printable(self.path)} was not written by charrnn, so charrnn will not replace it; "
                f"give {spelled('force', True)} to replace it, or another {spelled('output')}"
            )
        self._probe()

    def write(self, data: bytes | Iterable[bytes]) -> None:
        """Write `data`, or its pieces as they are made, as the file: whole or not at all (an
        error or an interrupt while the pieces are made leaves no file, nor any part of one)."""
        pieces = (data,) if isinstance(data, bytes) else data
        try:
            write_atomic(self.path, lambda file: file.writelines(pieces))
        except OSError as error:
            raise ConfigError(f"cannot write {printable(self.path)}: {error.strerror or error}") from None

    def _marked(self) -> bool:
        try:
            with open_to_read(self.path) as file:
                return self.mark in file.read(MARK_BYTES)
        except OSError:  # unreadable: nothing shows it is charrnn's
            return False

    def _probe(self) -> None:
        """Create, write and remove the temporary file the output is written through."""
        temporary = temporary_name(self.path)
        try:
            with create_new(temporary) as file:
                file.write(bytes(PROBE_BYTES))
                file.flush()
        except OSError as error:
            raise ConfigError(
                f"cannot write {printable(self.path)}: {error.strerror or error} (in {printable(self.path.parent)})"
            ) from None
        finally:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)


SAMPLES_MARK = b"--- charrnn sample of "  # the start of every file `charrnn sample -o` writes


def sample_output(path: str | Path, force: bool = False) -> OutputFile:
    """Where `sample -o` writes: over nothing but a file it wrote, unless `force` (output.py)."""
    return OutputFile(Path(path), SAMPLES_MARK, force)


def sample_file_header(checkpoint: Path, step: int, seed: int | None) -> str:
    """The first line of a `sample -o` file: charrnn's mark, and which model (and seed) made it."""
    seeded = f", seed {seed}" if seed is not None else ""
    return f"{SAMPLES_MARK.decode()}{printable(checkpoint)}, step {step:,}{seeded} ---\n"
