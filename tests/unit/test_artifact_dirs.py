"""Folders in the artifact store: a model or checkpoint goes in whole and comes back the same."""

from __future__ import annotations

from belle_shared.artifacts import ArtifactStore


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_put_dir_and_get_dir_round_trip(tmp_path):
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text('{"model_type": "llama"}')
    (source / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    store = ArtifactStore(str(tmp_path / "store"))

    stored = store.put_dir(source, "teams/t/models/m1")
    assert stored.bytes == len('{"model_type": "llama"}') + 2000
    assert store.local_path(stored.uri) and _tree(tmp_path / "store" / "teams/t/models/m1") == _tree(source)
    # Replacing a folder leaves no file of the old one behind.
    (source / "sub" / "weights.bin").unlink()
    again = store.put_dir(source, "teams/t/models/m1")
    assert again.sha256 != stored.sha256
    copy = tmp_path / "copy"
    store.get_dir(again.uri, copy)
    assert _tree(copy) == _tree(source)
    assert not list((tmp_path / "store" / "teams/t/models").glob("*.tmp-*"))


def test_put_dir_of_a_folder_deleted_mid_copy_leaves_nothing(tmp_path):
    """A checkpoint the Trainer rotates away while it is being uploaded: the error reaches the caller
    and no half copy stays in the store."""
    import pytest

    source = tmp_path / "checkpoint-3"
    source.mkdir()
    for name in ("a.bin", "b.bin"):
        (source / name).write_bytes(b"x" * 10)
    store = ArtifactStore(str(tmp_path / "store"))
    real_put = store.fs.put_file

    def put_then_delete(src, dst, **kwargs):
        real_put(src, dst, **kwargs)
        for name in ("a.bin", "b.bin"):
            (source / name).unlink(missing_ok=True)

    store.fs.put_file = put_then_delete
    with pytest.raises(FileNotFoundError):
        store.put_dir(source, "teams/t/jobs/j/checkpoints/checkpoint-3")
    assert not (tmp_path / "store" / "teams/t/jobs/j/checkpoints").exists() or \
        not any((tmp_path / "store" / "teams/t/jobs/j/checkpoints").iterdir())


def test_put_dir_of_a_missing_folder_raises_and_stores_nothing(tmp_path):
    """A checkpoint rotated away before its upload started: an error, never an empty folder that a
    later attempt would try to resume from."""
    import pytest

    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError):
        store.put_dir(tmp_path / "checkpoint-17", "teams/t/jobs/j/checkpoints/checkpoint-17")
    assert not store.exists(store.uri("teams/t/jobs/j/checkpoints/checkpoint-17"))


def test_get_dir_of_a_missing_folder_raises(tmp_path):
    import pytest

    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError):
        store.get_dir(store.uri("teams/t/models/gone"), tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
