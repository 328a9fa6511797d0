"""Atomic writes leave either the old file or the complete new one, and no temporary file."""

import argparse
import errno
import os
import pathlib

import pytest
import torch

from deep.storage.files import (
    CheckpointError,
    WriteError,
    load_resume_checkpoint,
    save_atomically,
    torch_bytes,
    write_atomically,
)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")

    def fail_halfway(temporary):
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fail_halfway)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
    write_atomically(path, lambda temporary: temporary.write_text("new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_full_disk_is_a_plain_message_naming_the_file(tmp_path, monkeypatch):
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    path = tmp_path / "metrics.csv"
    path.write_text("old")

    def fill_the_disk(temporary):
        temporary.write_text("half")
        raise full

    with pytest.raises(WriteError) as error:
        write_atomically(path, fill_the_disk)
    assert str(error.value) == f"could not write metrics.csv in {tmp_path}: No space left on device"
    assert error.value.errno == errno.ENOSPC and isinstance(error.value, OSError)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]

    def no_space(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(pathlib.Path, "write_bytes", no_space)  # torch's bytes go to disk through write_bytes
    with pytest.raises(WriteError, match=r"^could not write checkpoint.pt in .*: No space left on device$"):
        save_atomically({"weights": torch.ones(3)}, tmp_path / "checkpoint.pt")
    assert not (tmp_path / "checkpoint.pt").exists()


def same(config: dict) -> dict:
    return config


def test_an_empty_or_foreign_checkpoint_is_not_a_spacql_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    foreign = {
        b"": "the file is empty",
        b"not a zip": "not a torch.save zip archive",
        torch_bytes(argparse.Namespace(lr=0.1)): "objects other than tensors",
        torch_bytes(torch.ones(2)): "it holds a Tensor, not a dict",
        torch_bytes({"state_dict": {}}): "no config",
    }
    for data, reason in foreign.items():
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as error:
            load_resume_checkpoint(path, "cpu", {}, same)
        message = str(error.value)
        assert message.startswith(f"resume: {path} is not a spacql checkpoint (") and reason in message, message
        assert "weights_only" not in message and "\n" not in message
    path.write_bytes(torch_bytes({"config": {"seed": 1}, "learner": {}}))
    assert load_resume_checkpoint(path, "cpu", {"seed": 1}, same, ("learner",))["config"] == {"seed": 1}
    with pytest.raises(CheckpointError, match=r"not a spacql checkpoint \(no generator\)"):
        load_resume_checkpoint(path, "cpu", {"seed": 1}, same, ("learner", "generator"))


def test_torch_files_are_byte_deterministic_and_record_their_sha256(tmp_path):
    payload = {"weights": torch.arange(6.0), "log": "[]"}
    save_atomically(payload, tmp_path / "a.pt")
    save_atomically(payload, tmp_path / "nested.pt")  # another name: torch.save to a path would embed it
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "nested.pt").read_bytes() == torch_bytes(payload)
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["weights"], payload["weights"])
    data = bytearray((tmp_path / "a.pt").read_bytes())
    data[-1] = ord("0") if data[-1] != ord("0") else ord("1")  # the recorded digest itself changed
    (tmp_path / "a.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is damaged"):
        load_resume_checkpoint(tmp_path / "a.pt", "cpu", {}, same)
