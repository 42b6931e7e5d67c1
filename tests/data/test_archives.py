"""Hostile archives are refused before anything is written; good ones unpack exactly."""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from dogbreed.data.archives import ArchiveError, extract_archive, safe_name
from tests.data.conftest import make_dogimages, photos, sha256, tree, zip_folder

LIMITS = dict(max_bytes=10 * 2**20, max_files=1000)


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _tarinfo(name: str, kind: bytes = tarfile.REGTYPE, **attrs) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def _symlink_zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so external_attr carries the file type
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.fixture
def sandbox(tmp_path):
    """tmp_path/archives holds the archive, tmp_path/work/target is where it may unpack;
    anything new anywhere else under tmp_path means an entry escaped."""
    (tmp_path / "archives").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path


def _refused(sandbox: Path, archive: Path, match: str, **limits) -> ArchiveError:
    before = tree(sandbox)
    with pytest.raises(ArchiveError, match=match) as caught:
        extract_archive(archive, sandbox / "work" / "target", **{**LIMITS, **limits})
    assert tree(sandbox) == before, "an entry was written despite the refusal"
    assert "\n" not in str(caught.value)
    return caught.value


def test_zip_slip_is_refused(sandbox):
    archive = _zip(sandbox / "archives" / "slip.zip", [("ok.txt", b"fine"), ("../outside/evil.txt", b"pwned")])
    _refused(sandbox, archive, r"'\.\./outside/evil\.txt' climbs out")


def test_zip_absolute_path_is_refused(sandbox):
    target = (sandbox / "outside" / "abs.txt").as_posix()
    archive = _zip(sandbox / "archives" / "abs.zip", [(zipfile.ZipInfo(target), b"pwned")])
    _refused(sandbox, archive, "is an absolute path")


def test_zip_symlink_is_refused(sandbox):
    archive = _zip(sandbox / "archives" / "link.zip", [(_symlink_zipinfo("photos/link"), b"../../outside")])
    _refused(sandbox, archive, "'photos/link' is a symlink")


def test_a_folder_packed_with_its_links_is_refused_saying_how_to_pack_it(sandbox):
    """`tar czf` keeps a link to a photo as a link: the refusal says how to pack the photo."""
    folder = sandbox / "archives" / "dogs" / "Beagle"
    folder.mkdir(parents=True)
    (folder / "one.jpg").write_bytes(b"photo")
    (folder / "same.jpg").symlink_to(folder / "one.jpg")
    archive = sandbox / "archives" / "dogs.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(folder.parent, "dogs")
    error = _refused(sandbox, archive, "'dogs/Beagle/same.jpg' is a symlink")
    assert "tar --dereference" in str(error)


@pytest.mark.parametrize(
    ("name", "member", "match"),
    [
        ("slip", _tarinfo("../outside/evil.txt"), "climbs out"),
        ("abs", _tarinfo("/tmp/dogbreed-evil.txt"), "absolute path"),
        ("symlink", _tarinfo("a/link", tarfile.SYMTYPE, linkname="/etc/passwd"), "is a symlink"),
        ("hardlink", _tarinfo("a/hard", tarfile.LNKTYPE, linkname="../outside/x"), "is a hardlink"),
        ("device", _tarinfo("a/dev", tarfile.CHRTYPE, devmajor=1, devminor=3), "is a device file"),
        ("fifo", _tarinfo("a/pipe", tarfile.FIFOTYPE), "is a FIFO"),
    ],
)
def test_hostile_tar_entries_are_refused(sandbox, name, member, match):
    data = b"pwned" if member.type == tarfile.REGTYPE else None
    # A harmless entry first: it must not be written either.
    archive = _tar(sandbox / "archives" / f"{name}.tar.gz", [(_tarinfo("a/ok.txt"), b"ok"), (member, data)])
    _refused(sandbox, archive, match)


def test_zip_bomb_by_size_is_refused_from_headers(sandbox):
    archive = _zip(sandbox / "archives" / "bomb.zip", [("zeros.bin", b"\0" * (3 * 2**20))])
    assert archive.stat().st_size < 10_000  # compresses ~1000:1
    _refused(sandbox, archive, "data.max_archive_bytes", max_bytes=2**20)


def test_zip_bomb_by_count_is_refused(sandbox):
    archive = _zip(sandbox / "archives" / "many.zip", [(f"f{i}.txt", b"x") for i in range(50)])
    _refused(sandbox, archive, "data.max_archive_files=10", max_files=10)


def test_tar_bomb_by_count_and_size(sandbox):
    archive = _tar(sandbox / "archives" / "many.tar", [(_tarinfo(f"f{i}"), b"x" * 100) for i in range(30)], mode="w")
    _refused(sandbox, archive, "max_archive_files", max_files=20)
    _refused(sandbox, archive, "max_archive_bytes", max_bytes=2000)


def test_zip_entry_that_lies_about_its_size_is_a_problem_of_that_file(sandbox):
    """Headers say 100 bytes; the data inflates to 1 MiB. Within every declared limit, so
    only counting while writing catches it; the partial output must be removed."""
    archive = _zip(sandbox / "archives" / "liar.zip", [("liar.bin", b"\0" * 2**20)])
    raw = bytearray(archive.read_bytes())
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, 100)  # local header: uncompressed size
    struct.pack_into("<I", raw, central + 24, 100)  # central directory: uncompressed size
    archive.write_bytes(bytes(raw))
    target = sandbox / "work" / "target"
    ((row),) = extract_archive(archive, target, **LIMITS)
    assert row["file"] == "liar.bin" and row["problem"].startswith("refused: its data does not match its header")
    assert tree(target) == set()


ENTRY_LIMIT = 200_000  # data.max_image_bytes in these tests: a few MB of zeros is a bomb


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_an_entry_over_the_entry_limit_is_never_written_and_the_rest_unpacks(sandbox, fmt):
    """A 3 MiB entry of zeros (a few KB packed) beside a photo: the photo unpacks, the bomb
    is a problem row naming it and the setting, and not one byte of it reaches the disk."""
    photo = photos()[0].read_bytes()
    zeros = b"\0" * (3 * 2**20)
    path = sandbox / "archives" / f"bomb.{fmt}"
    if fmt == "zip":
        archive = _zip(path, [("A/x.jpg", photo), ("A/big.jpg", zeros), ("B/y.jpg", photo)])
    else:
        members = [(_tarinfo("A/x.jpg"), photo), (_tarinfo("A/big.jpg"), zeros), (_tarinfo("B/y.jpg"), photo)]
        archive = _tar(path, members)
    assert archive.stat().st_size < 50_000
    target = sandbox / "work" / "target"
    refused = extract_archive(archive, target, **LIMITS, max_entry_bytes=ENTRY_LIMIT)
    assert tree(target) == {"A", "A/x.jpg", "B", "B/y.jpg"}
    assert _disk_bytes(target) == 2 * len(photo)
    ((row),) = refused
    assert row["file"] == "A/big.jpg"
    assert row["problem"].startswith(f"too large: {len(zeros):,} bytes > data.max_image_bytes {ENTRY_LIMIT:,}")


def test_an_entry_exactly_at_the_entry_limit_unpacks(sandbox):
    archive = _zip(sandbox / "archives" / "edge.zip", [("A/edge.bin", b"\1" * ENTRY_LIMIT)])
    target = sandbox / "work" / "target"
    assert extract_archive(archive, target, **LIMITS, max_entry_bytes=ENTRY_LIMIT) == []
    assert (target / "A" / "edge.bin").stat().st_size == ENTRY_LIMIT


def _declare(archive: Path, name: bytes, size: int) -> None:
    """Make the zip's headers (local and central) say `name` holds `size` bytes."""
    raw = bytearray(archive.read_bytes())
    local = raw.find(b"PK\x03\x04", raw.find(name) - 40)
    central = raw.find(b"PK\x01\x02")
    while raw[central + 46 : central + 46 + len(name)] != name:
        central = raw.find(b"PK\x01\x02", central + 4)
    assert raw[local + 30 : local + 30 + len(name)] == name
    struct.pack_into("<I", raw, local + 22, size)  # local header: uncompressed size
    struct.pack_into("<I", raw, central + 24, size)  # central directory: uncompressed size
    archive.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("liar", "declared", "problem"),
    [
        # 3 MiB of zeros that say 100 bytes: stopped at 100 (zipfile reads no more), fails its CRC.
        (b"\0" * (3 * 2**20), lambda size: 100, "refused: its data does not match its header: Bad CRC-32 for file 'A/liar.jpg'"),
        # A photo that says it is 1,000 bytes longer than it is (its CRC its own).
        (None, lambda size: size + 1000, "refused: unpacks to {n:,} bytes, not the {d:,} its header declares"),
    ],
    ids=["says-less-fails-crc", "says-more"],
)
def test_a_zip_entry_that_lies_about_its_size_is_a_problem_row_and_the_rest_unpacks(sandbox, liar, declared, problem):
    """Within the entry limit by its header; what it holds is another size. That file is a
    problem row, nothing of it is left, and the entries before and after it unpack."""
    photo, other = photos()[0].read_bytes(), photos()[1].read_bytes()
    liar = other if liar is None else liar
    declared = declared(len(liar))
    archive = _zip(sandbox / "archives" / "liar.zip", [("A/x.jpg", photo), ("A/liar.jpg", liar), ("B/y.jpg", photo)])
    _declare(archive, b"A/liar.jpg", declared)
    target = sandbox / "work" / "target"
    ((row),) = extract_archive(archive, target, **LIMITS, max_entry_bytes=ENTRY_LIMIT)
    assert row == {"file": "A/liar.jpg", "problem": problem.format(n=len(liar), d=declared) + " (corrupt or hostile); not kept"}
    assert tree(target) == {"A", "A/x.jpg", "B", "B/y.jpg"}
    assert (target / "A" / "x.jpg").read_bytes() == photo == (target / "B" / "y.jpg").read_bytes()


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_a_tar_that_ends_inside_an_entry_is_refused_as_cut_short(sandbox, mode):
    """The last entry's header says 3 times what follows it: the archive ends inside it, as an
    interrupted download leaves a tar. What it lost cannot be listed (unlike a zip's lying
    entry, vouched for by its central directory), so it is refused whole, nothing kept."""
    photo, other = photos()[0].read_bytes(), photos()[1].read_bytes()
    members = [(_tarinfo("A/x.jpg"), photo), (_tarinfo("B/y.jpg"), other)]
    plain = _tar(sandbox / "archives" / "whole.tar", members, mode="w").read_bytes()
    header = plain.find(b"B/y.jpg")
    struct.pack_into("12s", (raw := bytearray(plain)), header + 124, b"%011o\0" % (3 * len(other)))
    raw[header + 148 : header + 156] = b" " * 8  # the header's checksum, computed again below
    raw[header + 148 : header + 155] = b"%06o\0" % sum(raw[header : header + 512])
    raw = raw[: header + 512 + len(other)]  # the archive ends with the entry's own bytes
    path = sandbox / "archives" / ("cut.tar" if mode == "w" else "cut.tar.gz")
    path.write_bytes(bytes(raw) if mode == "w" else gzip.compress(bytes(raw)))
    with pytest.raises(
        ArchiveError,
        match=r"cut short inside 'B/y.jpg' \(its header declares [\d,]+ bytes; the archive ends before them\).*download or create it again",
    ):
        extract_archive(path, sandbox / "work" / "target", **LIMITS, max_entry_bytes=ENTRY_LIMIT)
    assert not (sandbox / "work" / "target").exists()


def _with_header(plain: bytes, name: str, **fields: bytes) -> bytearray:
    """`plain` (a tar) with fields of `name`'s header replaced and its checksum made good."""
    raw = bytearray(plain)
    header = raw.find(name.encode())
    for offset, value in ((124, fields.get("size")), (0, fields.get("garbage"))):
        if value is not None:
            raw[header + offset : header + offset + len(value)] = value
    raw[header + 148 : header + 156] = b" " * 8
    raw[header + 148 : header + 155] = b"%06o\0" % sum(raw[header : header + 512])
    return raw


@pytest.mark.parametrize("damage", ["size-lies", "header-garbled"])
@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_a_tar_damaged_between_entries_is_refused_not_silently_shortened(sandbox, mode, damage):
    """tarfile stops without a word at a header it cannot read: a middle entry whose size
    field says half its size (the next header then lands inside its data), or a header
    overwritten with garbage, used to unpack the entries before it and drop the rest."""
    photo, other = photos()[0].read_bytes(), photos()[1].read_bytes()
    members = [(_tarinfo(f"A/{n}.jpg"), photo) for n in range(3)] + [(_tarinfo("B/y.jpg"), other)]
    plain = _tar(sandbox / "archives" / "whole.tar", members, mode="w").read_bytes()
    if damage == "size-lies":
        raw = _with_header(plain, "A/1.jpg", size=b"%011o\0" % (len(photo) // 2))
    else:
        raw = bytearray(plain)
        at = raw.find(b"A/2.jpg")
        raw[at : at + 512] = bytes(range(256)) * 2
    path = sandbox / "archives" / ("damaged.tar" if mode == "w" else "damaged.tar.gz")
    path.write_bytes(bytes(raw) if mode == "w" else gzip.compress(bytes(raw)))
    with pytest.raises(ArchiveError, match=r"corrupt archive \(an unreadable header at byte [\d,]+, after which no entry"):
        extract_archive(path, sandbox / "work" / "target", **LIMITS, max_entry_bytes=ENTRY_LIMIT)
    assert not (sandbox / "work" / "target").exists()


def test_tars_as_gnu_tar_writes_them_unpack_whole(sandbox, tmp_path):
    """The end check accepts real tars: GNU tar's zero blocks and record padding."""
    import shutil
    import subprocess

    if shutil.which("tar") is None:
        pytest.skip("no tar command on this machine")
    folder = tmp_path / "src" / "A"
    folder.mkdir(parents=True)
    for at, photo in enumerate(photos()[:5]):
        (folder / f"{at}.jpg").write_bytes(photo.read_bytes())
    for flags, name in (("cf", "gnu.tar"), ("czf", "gnu.tar.gz")):
        archive = sandbox / "archives" / name
        subprocess.run(["tar", flags, str(archive), "-C", str(folder.parent), "A"], check=True)
        target = sandbox / "work" / name
        assert extract_archive(archive, target, **LIMITS, max_entry_bytes=ENTRY_LIMIT) == []
        assert tree(target) == {"A", *(f"A/{at}.jpg" for at in range(5))}


def test_many_entries_under_the_entry_limit_that_compress_too_well_are_refused(sandbox):
    """Each entry within the limit, the whole 500 times the archive's size: a bomb by ratio,
    refused from the headers before anything is written."""
    archive = _zip(sandbox / "archives" / "ratio.zip", [(f"A/{i}.jpg", b"\0" * 150_000) for i in range(6)])
    assert archive.stat().st_size * 100 < 6 * 150_000
    error = _refused(sandbox, archive, "100 times its own", max_entry_bytes=ENTRY_LIMIT)
    assert "ingest the folder" in str(error)


def test_not_an_archive(sandbox):
    archive = sandbox / "archives" / "photo.zip"
    archive.write_bytes(photos()[0].read_bytes())
    _refused(sandbox, archive, "not a zip or tar archive")


def test_wrapped_dogimages_zip_unpacks_exactly(sandbox):
    source = make_dogimages(sandbox / "src", breeds=2)
    archive = zip_folder(source, sandbox / "archives" / "dogImages.zip")
    target = sandbox / "work" / "target"
    extract_archive(archive, target, **LIMITS)
    original = {p.relative_to(source.parent).as_posix(): sha256(p.read_bytes()) for p in source.rglob("*.jpg")}
    unpacked = {p.relative_to(target).as_posix(): sha256(p.read_bytes()) for p in target.rglob("*.jpg")}
    assert unpacked == original and len(unpacked) == 20
    assert next(iter(unpacked)).startswith("dogImages/")


def test_tar_gz_unpacks(sandbox):
    photo = photos()[0].read_bytes()
    archive = _tar(sandbox / "archives" / "ok.tar.gz", [(_tarinfo("A", tarfile.DIRTYPE), None), (_tarinfo("A/x.jpg"), photo)])
    extract_archive(archive, sandbox / "work" / "target", **LIMITS)
    assert (sandbox / "work" / "target" / "A" / "x.jpg").read_bytes() == photo


@pytest.mark.parametrize(
    ("raw", "safe"), [("a/b.jpg", "a/b.jpg"), ("./a//b.jpg", "a/b.jpg"), ("a\\b.jpg", "a/b.jpg"), ("dir/", "dir")]
)
def test_safe_name_normalises(raw, safe):
    assert safe_name(raw) == safe


@pytest.mark.parametrize("raw", ["../x", "a/../../x", "/etc/passwd", "C:/x", "C:\\x", "\\\\server\\share", "a\x00b"])
def test_safe_name_refuses(raw):
    with pytest.raises(ValueError):
        safe_name(raw)
