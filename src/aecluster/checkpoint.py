"""Checkpoint files: plain dicts of tensors and primitives, loaded with weights_only=True.

Every checkpoint carries a SHA-256 checksum of its content, checked on load, so a file changed
by a bit flip or a partial copy is refused instead of giving quietly wrong clusters.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from aecluster.errors import InputError
from aecluster.files import atomic_path, check_input_file, os_reason
from aecluster.models import AutoEncoder, build_model
from aecluster.recipes import complete

FORMAT = "aecluster-checkpoint-v1"


def _digest(value: Any, h: Any) -> None:
    """Feed a checkpoint's content into hash `h`, in a canonical order."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(b"D%d" % len(value))
        for key in sorted(value, key=repr):
            h.update(repr(key).encode())
            _digest(value[key], h)
    elif isinstance(value, list | tuple):
        h.update(b"L%d" % len(value))
        for item in value:
            _digest(item, h)
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())


def checksum(state: dict[str, Any]) -> str:
    h = hashlib.sha256()
    _digest({k: v for k, v in state.items() if k != "checksum"}, h)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` (which must hold `recipe` and `model`) atomically, with its checksum."""
    state = {"format": FORMAT, **state}
    state["checksum"] = checksum(state)
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # torch reports a failed write (e.g. a full disk) this way
            raise InputError(
                f"{path}: could not write the checkpoint ({e}); is the disk full?"
            ) from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint without ever running code from it; clear errors for anything else."""
    path = check_input_file(path, "checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles it then refuses
            warnings.simplefilter("ignore")
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
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({os_reason(e)})") from None
    except Exception as e:  # torch's reader raises many types for a damaged file
        reason = " ".join(str(e).split())[:160]
        raise InputError(
            f"{path}: truncated, corrupt or not a PyTorch checkpoint ({reason})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not an aecluster checkpoint (no '{FORMAT}' marker)")
    if state.get("checksum") != checksum(state):
        raise InputError(f"{path}: corrupt checkpoint: its content does not match its checksum")
    return state


def _check_weights(path: Path, name: str, model: AutoEncoder, weights: Any) -> None:
    """Name the first tensor that is missing, unexpected, misshapen or not finite."""
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise InputError(f"{path}: 'model' is not a table of named tensors")
    expected = model.state_dict()
    misfit = f"{path}: weights do not fit model {name!r}"
    for key, tensor in expected.items():
        if key not in weights:
            raise InputError(f"{misfit}: tensor {key!r} is missing")
        if weights[key].shape != tensor.shape:
            raise InputError(
                f"{misfit}: tensor {key!r} has shape {tuple(weights[key].shape)} in the "
                f"checkpoint, the model needs {tuple(tensor.shape)}"
            )
        if weights[key].is_floating_point() and not torch.isfinite(weights[key]).all():
            raise InputError(f"{path}: tensor {key!r} holds NaN or infinite weights")
    unexpected = sorted(set(weights) - set(expected))
    if unexpected:
        raise InputError(f"{misfit}: unexpected tensor {unexpected[0]!r}")


def load_model(path: str | os.PathLike) -> tuple[AutoEncoder, dict[str, Any]]:
    """The model, in eval mode, and the completed recipe stored in the checkpoint at `path`."""
    return model_from_state(load_checkpoint(path), path)


def model_from_state(
    state: dict[str, Any], path: str | os.PathLike = "checkpoint"
) -> tuple[AutoEncoder, dict[str, Any]]:
    """The model and completed recipe of a checkpoint's content (checked as on load)."""
    for key in ("recipe", "model"):
        if not isinstance(state.get(key), dict):
            raise InputError(f"{path}: checkpoint has no {key!r} table")
    recipe = complete(state["recipe"], where=f"{path}: recipe")
    model = build_model(recipe["model"]["name"], **recipe["model"]["params"])
    _check_weights(Path(path), recipe["model"]["name"], model, state["model"])
    model.load_state_dict(state["model"])
    return model.eval(), recipe


def on_cpu(state: object) -> object:
    """A deep copy of a (nested) state dict with every tensor on the CPU: checkpoints load
    anywhere."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: on_cpu(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(on_cpu(v) for v in state)
    return copy.deepcopy(state)
