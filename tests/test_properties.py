"""Property-based tests: whatever --set values, .npy headers or checkpoint contents are given,
the CLI exits 0, or exits 2 with one line; never a traceback, never a changed input, never a
half-written file."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, two_kinds
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import aecluster.training
from aecluster.checkpoint import FORMAT, checksum, save_checkpoint
from aecluster.cli import main
from aecluster.cluster import CLUSTERERS, REDUCERS, build_step
from aecluster.models import build_model
from aecluster.objective import Objective
from aecluster.optim import build_optimizer
from aecluster.recipes import DEFAULTS, apply_overrides, load_recipe

# CI replays the same examples every run (no flaky reds); elsewhere each run explores anew
SETTINGS = settings(max_examples=int(os.environ.get("AECLUSTER_EXAMPLES", 60)), deadline=None,
                    derandomize=bool(os.environ.get("CI")),
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


def run_cli(args: list[str], folder: Path) -> tuple[int, str]:
    """Run the CLI; check that the inputs in `folder` are unchanged and no temp file is left."""
    before = {p: hashlib.sha256(p.read_bytes()).digest() for p in folder.iterdir() if p.is_file()}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*args, "--quiet"])
    message = err.getvalue()
    event(f"exit {code}")
    assert code in (0, 2), message
    assert "Traceback" not in message
    if code == 2:
        assert message.startswith("aecluster: error: ") and message.count("\n") == 1, message
    for path, digest in before.items():
        assert hashlib.sha256(path.read_bytes()).digest() == digest, f"{path.name} changed"
    assert not list(folder.glob(".*.tmp")), "a temp file was left behind"
    return code, message


# --- TOML values, as a user might type them after --set key= ---


def toml_scalar() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(str),
        st.sampled_from(["0", "1", "2", "-1", "3", "64", "1000000"]),
        st.floats(allow_nan=True, allow_infinity=True).map(
            lambda f: "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
            if math.isinf(f) else repr(f)
        ),
        st.sampled_from(["true", "false", "0.0", "1e-9", "1e10", "0.5"]),
        st.text(max_size=8).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
        st.sampled_from(['"kmeans"', '"scan"', '"pca"', '"/tmp"', '"adam"', '"cosine"', "kmeans"]),
    )  # fmt: skip


def toml_value() -> st.SearchStrategy[str]:
    return st.recursive(
        toml_scalar(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.dictionaries(
                st.sampled_from(
                    [
                        "name",
                        "n_components",
                        "n_init",
                        "scale",
                        "widths",
                        "p",
                        "memory",
                        "epochs",
                        "kernel",
                        "bottleneck",
                    ]
                ),
                inner,
                max_size=3,
            ).map(lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"),
        ),  # fmt: skip
        max_leaves=6,
    )


def leaf_keys(table: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        keys.append(path)
        if isinstance(value, dict):
            keys += leaf_keys(value, path + ".")
    return keys


SET_KEYS = [k for k in leaf_keys(DEFAULTS) if "." in k] + ["model.params.widths", "views.crop"]
NAMED_VALUES = st.sampled_from([
    "cluster.method={name='scan',steps=2,n_heads=1,self_label_epochs=1}",
    "cluster.method={name='gmm',covariance_type='diag'}",
    "cluster.reduce=[{name='kernel_pca',n_components=3,kernel='cosine'},{name='tsne'}]",
    "model.params={widths=[4,8,16],residual=true,downsample='stride',upsample='pixelshuffle'}",
    "views={crop={scale=[0.5,1.0]},grayscale={p=1.0}}",
])  # fmt: skip


def fast_train(images, recipe, *rest):
    """Stands in for the training loop: build everything the recipe drives and take one step."""
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    objective = Objective(model, recipe)
    optimizer = build_optimizer(objective.parameters(), recipe["train"])
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    objective(x, torch.Generator().manual_seed(0))["loss"].backward()
    optimizer.step()
    for spec in [*recipe["cluster"]["reduce"], *recipe["select"]["reduce"]]:
        build_step(REDUCERS, spec, seed=0)
    build_step(CLUSTERERS, recipe["cluster"]["method"], recipe["cluster"]["n_clusters"], seed=0)
    return {"epochs": 0}


@SETTINGS
@given(st.one_of(st.tuples(st.sampled_from(SET_KEYS), toml_value()).map("=".join), NAMED_VALUES))
def test_any_set_value_trains_or_is_refused_in_one_line(monkeypatch, setting):
    monkeypatch.setattr(aecluster.training, "_train", fast_train)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        np.save(folder / "X.npy", two_kinds(8)[0])
        sets = [a for s in [*TINY, setting] for a in ("--set", s)]
        args = ["--data", str(folder / "X.npy"), "--out", str(folder / "m.pth"), *sets]
        code, _ = run_cli(["train", "--recipe", "baseline", *args], folder)
        if code == 2:
            assert not (folder / "m.pth.run").exists(), "an empty run folder was left"


@pytest.fixture(scope="module")
def checkpoint_parts():
    recipe = apply_overrides(load_recipe("baseline"), TINY)
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    return recipe, model.state_dict()


@SETTINGS
@given(setting=st.tuples(st.sampled_from([k for k in SET_KEYS if k.startswith("cluster.")]),
                         toml_value()).map("=".join))  # fmt: skip
def test_any_clustering_set_value_predicts_or_is_refused(checkpoint_parts, setting):
    recipe, weights = checkpoint_parts
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        np.save(folder / "X.npy", two_kinds(16)[0])
        save_checkpoint(folder / "m.pth", {"recipe": recipe, "model": weights})
        run_cli(["predict", "--data", str(folder / "X.npy"), "--checkpoint", str(folder / "m.pth"),
                 "--out", str(folder / "p.csv"), "--set", setting.replace(".epochs=", ".n_init=")],
                folder)  # fmt: skip


# --- .npy headers ---


def npy_file(descr: str, fortran: str, shape: str, payload: int) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header = header + " " * (63 - len(header) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + \
        bytes(payload)  # fmt: skip


DIMS = st.one_of(st.integers(-3, 40), st.sampled_from([10**11, 2**62, 2**64]))
HEADERS = st.tuples(
    st.sampled_from(["'|u1'", "'<f4'", "'<i8'", "'|O'", "'<U3'", "'|b1'", "'<c8'", "'zz'", "3",
                     "[('a', '|u1')]"]),
    st.sampled_from(["False", "True", "'no'"]),
    st.one_of(st.lists(DIMS, max_size=5).map(lambda xs: "(" + "".join(f"{x}, " for x in xs) + ")"),
              st.sampled_from(["(2, 32, 32, 3)", "(3, 8, 8)", "'x'", "(1.5, 2)", "None"])),
    st.one_of(st.integers(0, 7000), st.sampled_from([192, 768, 6144, 24576])),
)  # fmt: skip


@SETTINGS
@given(header=HEADERS)
def test_any_npy_header_is_read_or_refused_in_one_line(checkpoint_parts, header):
    recipe, weights = checkpoint_parts
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "X.npy").write_bytes(npy_file(*header))
        (folder / "Y.npy").write_bytes(npy_file(*header))
        np.save(folder / "good.npy", two_kinds(4)[0])
        save_checkpoint(folder / "m.pth", {"recipe": recipe, "model": weights})
        run_cli(["predict", "--data", str(folder / "X.npy"), "--checkpoint",
                 str(folder / "m.pth"), "--out", str(folder / "p.csv")], folder)  # fmt: skip
        run_cli(["evaluate", "--checkpoint", str(folder / "m.pth"), "--val-x",
                 str(folder / "good.npy"), "--val-y", str(folder / "Y.npy")], folder)  # fmt: skip


# --- checkpoint contents ---

JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
              st.just(torch.zeros(2)), st.just(torch.full((1,), float("nan")))),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)  # fmt: skip


def mutate(table: dict, path: list[str], value) -> dict:
    out = copy.deepcopy(table)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key), dict) else node
    node[path[-1]] = value
    return out


@SETTINGS
@given(
    part=st.sampled_from(["recipe", "model", "format", "whole", "extra"]),
    key=st.sampled_from(leaf_keys(DEFAULTS) + ["model.params.widths", "unknown"]),
    value=JUNK,
    rehash=st.booleans(),
)
def test_any_checkpoint_content_loads_or_is_refused_in_one_line(
    checkpoint_parts, part, key, value, rehash
):
    recipe, weights = checkpoint_parts
    state = {"format": FORMAT, "recipe": recipe, "model": dict(weights)}
    if part == "recipe":
        state["recipe"] = mutate(recipe, key.split("."), value)
    elif part == "model":
        state["model"] = mutate(state["model"], [next(iter(weights))], value)
    elif part == "whole":
        state = {"format": FORMAT, key: value}
    else:
        state[part if part == "format" else key] = value
    if rehash:
        state["checksum"] = checksum(state)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        np.save(folder / "X.npy", two_kinds(16)[0])
        torch.save(state, folder / "m.pth")
        run_cli(["predict", "--data", str(folder / "X.npy"), "--checkpoint",
                 str(folder / "m.pth"), "--out", str(folder / "p.csv")], folder)  # fmt: skip
