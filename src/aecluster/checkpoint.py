"""Checkpoint files: plain dicts of tensors and primitives, loaded with weights_only=True."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from aecluster.errors import InputError
from aecluster.files import atomic_path
from aecluster.models import AutoEncoder, build_model
from aecluster.recipes import complete

FORMAT = "aecluster-checkpoint-v1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` (which must hold `recipe` and `model`) atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint without ever running code from it; clear errors for anything else."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names the offending import on a line of its own ("... GLOBAL posix.system ...")
        reason = next((line.split("error:", 1)[-1].strip() for line in str(e).splitlines()
                       if "GLOBAL" in line), "")  # fmt: skip
        if reason:
            raise InputError(
                f"{path}: refused to load: it holds code or objects, not only tensors ({reason})"
            ) from None
        raise InputError(f"{path}: truncated, corrupt or not a PyTorch checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise InputError(f"{path}: truncated, corrupt or not a PyTorch checkpoint ({e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not an aecluster checkpoint (no '{FORMAT}' marker)")
    return state


def load_model(path: str | os.PathLike) -> tuple[AutoEncoder, dict[str, Any]]:
    """The model, in eval mode, and the completed recipe stored in the checkpoint at `path`."""
    state = load_checkpoint(path)
    recipe = complete(state["recipe"], where=f"{path}: recipe")
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise InputError(
            f"{path}: weights do not fit model {recipe['model']['name']!r} "
            f"({str(e).splitlines()[0]})"
        ) from None
    return model.eval(), recipe
