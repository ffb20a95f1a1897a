"""The corpus cache is data too: damaged entries are rebuilt, never used; writes are crash-safe;
a stale entry is never taken for an edited text; an unusable cache gets one clear line."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import charrnn.store.cache
from charrnn.cli.commands import main
from charrnn.core.vocab import Vocab
from charrnn.errors import CorpusError
from charrnn.store.cache import HEADER_BYTES
from charrnn.store.corpus import resolve_corpus
from charrnn.store.encoded import CorpusCache
from charrnn.store.files import create_new
from helpers import PANGRAM, fast_args

TEXT = PANGRAM * 60 + "naïve café 世界\n"
FAST = fast_args(max_steps=10, quiet=True)
TAG = ".charrnn-tmp-"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own, so that its entries can be found and damaged."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CHARRNN_CACHE", str(folder))
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _build(corpus: Path, root: Path):
    cache = CorpusCache(resolve_corpus([str(corpus)]), root=root)
    counted = cache.counts()
    vocab, _ = Vocab.from_counts(counted[0].counts)
    return cache, vocab, cache.encoded(vocab, counted=counted)


def _entries(root: Path) -> tuple[Path, Path]:
    (counts,) = root.glob("*/counts.bin")
    (ids,) = root.glob("*/ids-*.bin")
    return counts, ids


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "zeroed":  # a power cut after the size was written, before the data
        path.write_bytes(bytes(len(data)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif how == "payload-byte":  # one id changed: the size and the header are right
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif how == "folder":
        path.unlink()
        path.mkdir()


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def _leftovers(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if TAG in path.name]


DAMAGES = ["zeroed", "truncated", "random", "payload-byte", "folder"]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("entry", ["counts", "ids"])
def test_a_damaged_entry_is_rebuilt_never_used(corpus, tmp_path, entry, how):
    _, vocab, built = _build(corpus, tmp_path / "cache")
    expected = vocab.encode(TEXT)
    assert np.array_equal(built.ids, expected)
    _damage(_entries(tmp_path / "cache")[entry == "ids"], how)
    _, _, again = _build(corpus, tmp_path / "cache")
    assert np.array_equal(again.ids, expected) and again.counts.sha256 == built.counts.sha256
    assert not (again.counts_reused if entry == "counts" else again.ids_reused)
    _, _, third = _build(corpus, tmp_path / "cache")  # the rebuilt entry is whole again
    assert third.counts_reused and third.ids_reused


def test_a_zero_filled_ids_file_is_neither_trained_on_nor_scored(corpus, cache, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["train", str(corpus), *FAST, "--out", str(tmp_path / "run")]).exit_code == 0
    before = runner.invoke(main, ["eval", str(corpus), "-c", str(tmp_path / "run")])
    _damage(_entries(cache)[1], "zeroed")
    after = runner.invoke(main, ["eval", str(corpus), "-c", str(tmp_path / "run")])
    assert after.exit_code == 0 and after.stdout == before.stdout  # scored on the real text, not zeros
    _damage(_entries(cache)[1], "zeroed")
    trained = runner.invoke(main, ["train", str(corpus), *FAST[:-1], "--out", str(tmp_path / "again")])
    assert trained.exit_code == 0 and "encoded and cached" in trained.stderr


def test_a_folder_with_files_where_an_entry_should_be_is_refused_in_one_line(corpus, cache, tmp_path):
    _build(corpus, cache)
    ids = _entries(cache)[1]
    ids.unlink()
    (ids / "keep").mkdir(parents=True)
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert f"the corpus cache entry {ids} is a folder, not a file; remove it" in _one_error_line(result)
    assert (ids / "keep").is_dir()  # nothing of it was deleted


def test_a_text_edited_in_place_with_the_same_size_and_time_is_encoded_again(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("abcd" * 100 + "\n", encoding="utf-8")
    _, vocab, _ = _build(path, tmp_path / "cache")
    status = path.stat()
    with open(path, "r+b") as file:  # same size, same modification time: what `touch -r` or a careful editor leaves
        file.write(b"dcba")
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_size == status.st_size and path.stat().st_mtime_ns == status.st_mtime_ns
    _, _, again = _build(path, tmp_path / "cache")
    assert not again.counts_reused and not again.ids_reused
    assert np.array_equal(again.ids, vocab.encode("dcba" + "abcd" * 99 + "\n"))


def test_a_text_that_changes_between_the_two_passes_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_text("abcd" * 100, encoding="utf-8")
    cache = CorpusCache(resolve_corpus([str(path)]), root=tmp_path / "cache")
    counted = cache.counts()
    path.write_text("dcba" * 100, encoding="utf-8")  # same characters, same length: only the hash tells
    with pytest.raises(CorpusError, match="changed while it was being read"):
        cache.encoded(Vocab.from_counts(counted[0].counts)[0], counted=counted)
    assert not _leftovers(tmp_path / "cache") and not list((tmp_path / "cache").glob("*/ids-*"))


# A child that starts training and stops inside the encoding pass, with part of the ids written,
# until a signal comes: so the test signals it at a known point, however fast the machine.
_CHILD = """
import sys, time
import charrnn.store.encoded

def stalled(corpus, vocab, file, progress, counted=None):
    file.write(b"\\x01" * 4096)
    print("encoding", flush=True)
    time.sleep(120)

charrnn.store.encoded.encode_chars = stalled
from charrnn.cli.commands import main
main(["train", sys.argv[1], "--max-steps", "2", "--out", sys.argv[2]])
"""


def _stalled_in_encoding(corpus: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "CHARRNN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(corpus), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "encoding\n", child.communicate(timeout=60)
    assert len(_leftovers(cache)) == 1  # the temporary file the signal will find
    return child


@pytest.mark.slow  # fault injection: signals an encoding process
def test_sigterm_while_encoding_leaves_no_temporary_file(corpus, cache, tmp_path):
    child = _stalled_in_encoding(corpus, tmp_path / "run", cache)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert stderr.strip().splitlines() == [
        f"Error: stopped by SIGTERM while encoding {corpus}; nothing half-written was left in the cache"
    ]
    assert not _leftovers(cache) and not list(cache.glob("*/ids-*"))


@pytest.mark.slow  # fault injection: kills an encoding process
def test_the_leftovers_of_a_killed_run_are_removed_at_the_next_use(corpus, cache, tmp_path):
    child = _stalled_in_encoding(corpus, tmp_path / "run", cache)
    child.kill()  # SIGKILL: no handler runs
    child.communicate(timeout=60)
    (leftover,) = _leftovers(cache)
    _build(corpus, cache)
    assert not leftover.exists() and not _leftovers(cache)


def test_only_charrnn_s_own_leftovers_of_ended_writers_on_this_host_are_removed(cache, corpus, tmp_path):
    host = charrnn.store.cache.socket.gethostname()
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = int(ended.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = cache / "somekey"
        folder.mkdir(parents=True)
        removed = [folder / f".ids-1.bin{TAG}{dead}@{host}", cache / "spooled" / f".text{TAG}{dead}@{host}"]
        kept = [
            folder / f".ids-2.bin{TAG}{alive.pid}@{host}",  # its writer is still at work
            folder / f".ids-3.bin{TAG}{dead}@another-host",  # a machine sharing the cache
            folder / ".notes.md.tmp-4000000",
            folder / f"notes{TAG}{dead}",
            folder / f".x{TAG}not-a-pid@{host}",
        ]
        for path in removed + kept:
            path.parent.mkdir(exist_ok=True)
            path.write_text("data")
        _build(corpus, cache)
        assert [p for p in removed if p.exists()] == [] and [p for p in kept if not p.exists()] == []
    finally:
        alive.kill()
        alive.wait()


def test_an_empty_CHARRNN_CACHE_is_refused_and_the_current_folder_is_left_alone(corpus, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for value in ("", "  "):
        result = CliRunner().invoke(
            main, ["train", str(corpus), *FAST, "--out", str(tmp_path / "run")], env={"CHARRNN_CACHE": value}
        )
        assert result.exit_code == 2
        assert "Invalid value for 'CHARRNN_CACHE': is empty" in _one_error_line(result)
    assert list(work.iterdir()) == []


def test_a_relative_XDG_CACHE_HOME_is_ignored(monkeypatch, tmp_path):
    monkeypatch.delenv("CHARRNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert charrnn.store.cache.cache_root() == tmp_path / ".cache" / "charrnn"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert charrnn.store.cache.cache_root() == tmp_path / "xdg" / "charrnn"


def test_a_cache_under_a_file_is_refused_naming_it(corpus, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        main,
        ["train", str(corpus), *FAST, "--out", str(tmp_path / "run")],
        env={"CHARRNN_CACHE": str(blocker / "cache")},
    )
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert f"cannot write to the corpus cache {blocker / 'cache'}" in line and "Not a directory" in line


def _failing_writes(monkeypatch, number: int, after: int = 0) -> None:
    """Writes into the cache fail with `number` (EROFS, ENOSPC) after `after` bytes. (Tests run
    as root, which a read-only mode does not stop, hence a stand-in for the file system.)"""

    class Failing:
        def __init__(self, file):
            self.file, self.left = file, after

        def write(self, data):
            if len(data) > self.left:
                raise OSError(number, os.strerror(number))
            self.left -= len(data)
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

    def creating(path):  # the cache creates every file it writes this way (a temporary one)
        if number == errno.EROFS:
            raise OSError(number, os.strerror(number), str(path))
        return Failing(create_new(path))

    monkeypatch.setattr(charrnn.store.cache, "create_new", creating)


@pytest.mark.parametrize("number, after", [(errno.EROFS, 0), (errno.ENOSPC, 0), (errno.ENOSPC, 5000)])
def test_a_read_only_or_full_cache_is_refused_in_one_line(corpus, cache, tmp_path, monkeypatch, number, after):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if after:  # the counts fit; the ids fill the disk
        cache_entry = CorpusCache(resolve_corpus([str(corpus)]), root=cache)
        cache_entry.counts()
    _failing_writes(monkeypatch, number, after)
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert (
        f"cannot write to the corpus cache {cache}" in line and os.strerror(number) in line and "CHARRNN_CACHE" in line
    )
    assert not _leftovers(cache) and list(work.iterdir()) == []


def test_a_read_only_cache_with_whole_entries_is_still_used(corpus, cache, tmp_path, monkeypatch):
    _build(corpus, cache)
    _failing_writes(monkeypatch, errno.EROFS)
    result = CliRunner().invoke(main, ["train", str(corpus), *FAST[:-1], "--out", str(tmp_path / "run")])
    assert result.exit_code == 0 and "cached encoding reused" in result.stderr


# Fuzzing: whatever happens to the bytes of an entry, what comes back is the text's true
# counts and ids (reused only if the ids are untouched), or one clear refusal.
_MUTATIONS = st.one_of(
    st.tuples(st.just("zero"), st.floats(0, 1), st.integers(1, 10_000)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("random"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("append"), st.just(1.0), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("folder"), st.just(0.0), st.just(0)),
)


def _mutated(data: bytes, kind: str, where: float, value) -> bytes | None:
    """The bytes after the mutation; None for a folder in the file's place."""
    at = min(int(where * len(data)), len(data) - 1)
    if kind == "zero":
        return data[:at] + bytes(min(value, len(data) - at)) + data[at + value :]
    if kind == "truncate":
        return data[:at]
    if kind == "random":
        return data[:at] + value + data[at + len(value) :]
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ value]) + data[at + 1 :]
    if kind == "append":
        return data + value
    return None


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A text, its true counts and ids, and the bytes of its two cache entries."""
    folder = tmp_path_factory.mktemp("pristine")
    text = "fuzz 测试 🙂 " * 50 + "\n"
    (folder / "t.txt").write_text(text, encoding="utf-8")
    _, vocab, built = _build(folder / "t.txt", folder / "cache")
    entries = [(path.relative_to(folder / "cache"), path.read_bytes()) for path in _entries(folder / "cache")]
    return folder / "t.txt", vocab.encode(text), built.counts, entries


@pytest.mark.slow  # fuzzing
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=st.sampled_from(["counts", "ids", "both"]), mutation=_MUTATIONS, second=_MUTATIONS)
def test_fuzzed_cache_entries_give_the_true_ids_or_one_refusal(pristine, tmp_path, entry, mutation, second):
    corpus, expected_ids, expected_counts, entries = pristine
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        root = Path(scratch)
        paths = [root / relative for relative, _ in entries]
        paths[0].parent.mkdir()
        targets = {"counts": [0], "ids": [1], "both": [0, 1]}[entry]
        changes = dict(zip(targets, (mutation, second)))
        for index, (path, (_, original)) in enumerate(zip(paths, entries)):
            data = _mutated(original, *changes[index]) if index in changes else original
            if data is None:
                path.mkdir()
            else:
                path.write_bytes(data)
        try:
            _, _, again = _build(corpus, root)
        except CorpusError as error:
            assert "\n" not in str(error)
            return
        assert np.array_equal(again.ids, expected_ids) and np.array_equal(again.counts.counts, expected_counts.counts)
        assert again.counts.sha256 == expected_counts.sha256
        if again.ids_reused:  # only a change the check cannot see and that does no harm: header padding
            assert paths[1].read_bytes()[HEADER_BYTES:] == entries[1][1][HEADER_BYTES:]
        assert not _leftovers(root)
