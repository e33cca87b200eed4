import pickle

import pytest
import torch

from aecluster.checkpoint import load_model, save_checkpoint
from aecluster.errors import InputError
from aecluster.models import build_model


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_checkpoint_with_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"format": "aecluster-checkpoint-v1", "x": RunsCode()}, path)
    with pytest.raises(InputError, match="refused to load"):
        load_model(path)
    assert not (tmp_path / "pwned").exists()


def test_corrupt_truncated_and_foreign_files(tmp_path, tiny_recipe):
    good = tmp_path / "good.pth"
    model = build_model(tiny_recipe["model"]["name"], **tiny_recipe["model"]["params"])
    save_checkpoint(good, {"recipe": tiny_recipe, "model": model.state_dict()})
    load_model(good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated, corrupt"):
        load_model(cut)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not an aecluster checkpoint"):
        load_model(foreign)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(InputError):
        load_model(junk)


def test_weights_of_another_architecture(tmp_path, tiny_recipe):
    path = tmp_path / "mixed.pth"
    save_checkpoint(path, {"recipe": tiny_recipe, "model": build_model("baseline").state_dict()})
    with pytest.raises(InputError, match="do not fit model 'conv'"):
        load_model(path)
