"""Nothing a checkpoint, a recipe or --set holds may make a library read a file, a folder or run
code: every step's parameters are an allow-list with types and ranges."""

from __future__ import annotations

import inspect
import subprocess

import numpy as np
import pytest
import torch
from conftest import REPO, TINY, two_kinds

from aecluster.augment import TRANSFORMS
from aecluster.checkpoint import load_model, save_checkpoint
from aecluster.cluster import CLUSTERERS, REDUCERS, build_step
from aecluster.errors import InputError
from aecluster.models import MODELS, build_model
from aecluster.recipes import SCHEMA, apply_overrides, load_recipe
from aecluster.schema import Options

REGISTRIES = {"reduce": REDUCERS, "cluster": CLUSTERERS}


def planted_checkpoint(tmp_path, cluster_method: dict):
    """A checksummed checkpoint whose stored recipe asks a library to use a folder."""
    recipe = apply_overrides(load_recipe("baseline"), TINY)
    recipe["cluster"]["method"] = cluster_method
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    path = tmp_path / "planted.pth"
    save_checkpoint(path, {"recipe": recipe, "model": model.state_dict()})
    return path


def test_a_checkpoint_cannot_point_joblib_at_a_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    ckpt = planted_checkpoint(tmp_path, {"name": "agglomerative", "memory": str(cache)})
    np.save(tmp_path / "X.npy", two_kinds(16)[0])
    r = subprocess.run(["bash", str(REPO / "hw9_best.sh"), str(tmp_path / "X.npy"), str(ckpt),
                        str(tmp_path / "p.csv")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "unknown key 'memory'" in r.stderr, r.stderr
    assert list(cache.iterdir()) == []  # joblib would have made cache/joblib
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_no_library_parameter_outside_the_allow_list_is_accepted(kind):
    """Every constructor parameter of the library object behind a step that the step does not
    declare is refused, whatever its value."""
    for name, step in REGISTRIES[kind].items():
        args = (2,) if kind == "cluster" else ()
        if name == "head":
            continue  # ours, not a library's; its parameters are all declared
        built = build_step(REGISTRIES[kind], {"name": name}, *args, seed=0)
        for param in built.get_params():
            if param in step.params.fields or param in ("random_state", "n_clusters"):
                continue
            for value in ("/tmp/planted", 1, {"a": 1}):
                with pytest.raises(InputError, match="unknown key"):
                    build_step(REGISTRIES[kind], {"name": name, param: value}, *args, seed=0)


def _declared_leaves(schema, key=""):
    fields = getattr(schema, "fields", None)
    if fields is None:
        yield key, schema
        return
    for name, item in fields.items():
        yield from _declared_leaves(item, f"{key}.{name}")


def test_no_declared_parameter_takes_a_free_string():
    """A path can only reach a library as a string: no parameter anywhere accepts one, except
    names from a fixed list (and a recipe's own name and description, which reach nothing)."""
    entries = [e.params for r in (REDUCERS, CLUSTERERS, MODELS, TRANSFORMS) for e in r.values()]
    for table in [SCHEMA, *entries]:
        for key, constraint in _declared_leaves(table):
            if key in (".name", ".description") or isinstance(constraint, Options):
                continue
            with pytest.raises(InputError):
                constraint.check("/tmp/planted", key)


@pytest.mark.parametrize(
    "setting",
    [
        "cluster.method={name='agglomerative',memory='/tmp/x'}",
        "cluster.method={name='kmeans',algorithm='/tmp/x'}",
        "cluster.reduce=[{name='kernel_pca',kernel='/tmp/x'}]",
        "cluster.reduce=[{name='tsne',metric='/tmp/x'}]",
        "model.params={widths=[8,16],init='/tmp/x'}",
        "views={crop={scale=[0.2,1.0],path='/tmp/x'}}",
        "select.reduce=[{name='pca',svd_solver='/tmp/x'}]",
        "train.optimizer='/tmp/x'",
    ],
)
def test_set_cannot_name_a_file_for_a_library(setting):
    with pytest.raises(InputError):
        apply_overrides(load_recipe("baseline"), [setting])


def test_checkpoint_code_never_runs_and_foreign_objects_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Planted:
        def __reduce__(self):
            return (exec, ("open('marker', 'w').close()",))

    torch.save({"format": "aecluster-checkpoint-v1", "recipe": {}, "model": Planted()},
               tmp_path / "evil.pth")  # fmt: skip
    with pytest.raises(InputError, match="refused to load"):
        load_model(tmp_path / "evil.pth")
    assert not (tmp_path / "marker").exists()


def test_model_constructors_take_only_declared_parameters():
    for name, cls in MODELS.items():
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert set(cls.params.fields) == accepted, name
