"""Recipes: TOML files naming the model, training, loss and clustering settings.

A recipe is a plain dict of the sections below; the built-in ones live in `aecluster/recipes/`.
Missing keys take the defaults here, so a recipe file states only what it changes.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from aecluster.augment import TRANSFORMS, RandomResizedCrop
from aecluster.cluster import CLUSTERERS, FIT_SAMPLE, REDUCERS
from aecluster.device import PRECISIONS
from aecluster.errors import InputError
from aecluster.files import check_input_file, os_reason
from aecluster.models import MODELS
from aecluster.optim import LR_SCHEDULES, OPTIMIZERS
from aecluster.schema import Bool, Int, ListOf, Named, Options, Real, Spec, Table, Text
from aecluster.selection import SELECTORS

RECIPES_DIR = Path(__file__).parent / "recipes"

DEFAULTS: dict[str, Any] = {
    "name": "custom",
    "description": "",
    "model": {"name": "baseline", "params": {}},
    "train": {
        "epochs": 100,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 1e-5,
        "lr_schedule": "constant",  # or "cosine": decay to 0 over the epochs
        "weight_decay": 1e-5,
        "momentum": 0.9,
        "checkpoint_every": 10,
        "seed": 0,
        "budget_minutes": 0.0,  # 0: no time limit
        # with a budget: plan as many epochs as fit (true) or at most `epochs` (false); see planner
        "fill_budget": False,
        "channels_last": False,  # NHWC memory layout: faster convolutions on some CPUs
        "precision": "fp32",  # or "bf16" (CPU or GPU), "fp16" (CUDA), "auto": autocast's dtype
        # after the epochs and after fine-tuning: BatchNorm's running statistics recomputed on
        # the unaugmented images (at most cluster.fit_sample of them) the model will embed
        "recalibrate_batchnorm": False,
    },
    # weights of each term of the objective; 0 switches a term (and its head) off
    "loss": {
        "reconstruction": 1.0,
        "rotation": 0.0,
        "contrastive": 0.0,
        "kl": 0.0,
        "temperature": 0.5,
        # with a contrastive loss: the share of each batch the decoder reconstructs (every
        # image is encoded); less than 1 buys epochs under a time budget
        "reconstruct_share": 1.0,
    },
    # transforms applied to the autoencoder's input (denoising/augmentation), and to the two
    # views of the contrastive loss; see aecluster.augment.TRANSFORMS
    "augment": {},
    "views": {"crop": {}, "color": {}, "grayscale": {}},
    # multi-crop (SwAV): `count` more views per image for the contrastive loss, each a crop of
    # `scale` of the image shown at `size` x `size` pixels (cheap: a 16x16 crop costs a quarter
    # of a 32x32 view), with the views' other transforms; 0 switches it off
    "crops": {"count": 0, "size": 16, "scale": [0.1, 0.4]},
    "cluster": {
        "n_clusters": 2,
        "reduce": [{"name": "kernel_pca", "n_components": 200}, {"name": "tsne"}],
        "method": {"name": "minibatch_kmeans"},
        "seed": 0,
        # above this many images, reduction and clustering are fitted on a seeded sample of
        # this many and applied to the rest (bounded memory for any N)
        "fit_sample": FIT_SAMPLE,
        # test-time augmentation: the code clustered is the mean of the encoder's codes of fixed
        # views of the image: itself, `crops` crops of `scale` of its side (corners, then the
        # centre) resized back, and with `flip` the mirror image of each; see predict.tta_views
        "tta": {"flip": False, "crops": 0, "scale": 0.85},
    },
    # SCAN's second step, after the autoencoder epochs: fit the recipe's `scan` clustering on the
    # chosen checkpoint's codes, then train encoder, decoder and the chosen head together for
    # these epochs (neighbour consistency on augmented views + reconstruction); the head
    # becomes the checkpoint's clustering method
    "finetune": {"epochs": 0, "lr": 1e-4, "weight_decay": 1e-4},
    # which saved checkpoint becomes the final one, chosen without labels: "last", or
    # "stability" (see aecluster.selection), scored after these reduction steps
    "select": {
        "checkpoint": "last",
        "reduce": [{"name": "normalize"}, {"name": "pca", "n_components": 32}],
        "resamples": 4,
    },
}


SEED = Int(0, 2**32 - 1)
WEIGHT = Real(0, 1000)
REDUCE_STEPS = ListOf(Spec(REDUCERS), 0, 8)

# every value a recipe may hold, declared once; checked at load, at --set and when a checkpoint's
# recipe is read, so the code behind it can trust what it is given
SCHEMA = Table(
    {
        "name": Text(200),
        "description": Text(),
        "model": Spec(MODELS, params_key="params", kind="model"),
        "train": Table({
            "epochs": Int(1, 100_000),
            "batch_size": Int(2, 65_536),
            "optimizer": Options(tuple(OPTIMIZERS)),
            "lr": Real(0, 10, lo_open=True),
            "lr_schedule": Options(tuple(LR_SCHEDULES)),
            "weight_decay": Real(0, 1),
            "momentum": Real(0, 1),
            "checkpoint_every": Int(1, 100_000),
            "seed": SEED,
            "budget_minutes": Real(0, 10**6),
            "fill_budget": Bool(),
            "channels_last": Bool(),
            "precision": Options((*PRECISIONS, "auto")),
            "recalibrate_batchnorm": Bool(),
        }),
        "loss": Table({
            "reconstruction": WEIGHT,
            "rotation": WEIGHT,
            "contrastive": WEIGHT,
            "kl": WEIGHT,
            "temperature": Real(0.01, 100),
            "reconstruct_share": Real(0, 1, lo_open=True),
        }),
        "augment": Named(TRANSFORMS),
        "views": Named(TRANSFORMS),
        "crops": Table(
            {"count": Int(0, 64), "size": Int(4, 1024),
             "scale": RandomResizedCrop.params.fields["scale"]}
        ),
        "cluster": Table({
            "n_clusters": Int(2, 10_000),
            "reduce": REDUCE_STEPS,
            "method": Spec(CLUSTERERS),
            "seed": SEED,
            "fit_sample": Int(100, 10**7),
            "tta": Table({"flip": Bool(), "crops": Int(0, 5), "scale": Real(0.5, 1)}),
        }),
        "finetune": Table({
            "epochs": Int(0, 100_000),
            "lr": Real(0, 10, lo_open=True),
            "weight_decay": Real(0, 1),
        }),
        "select": Table({
            "checkpoint": Options(tuple(SELECTORS)),
            "reduce": REDUCE_STEPS,
            "resamples": Int(1, 100),
        }),
    },
)  # fmt: skip

# tables whose keys depend on a name they hold (model, transform, clustering method): a recipe
# gives them whole instead of merging them with the defaults
REPLACED_WHOLE = ("params", "augment", "views", "method")


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def _merge(base: dict, update: dict, where: str, section: str = "") -> dict:
    """`base` with `update`'s keys (refusing unknown ones); errors name `where` and the key."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        name = f"{section}.{key}" if section else key
        if not isinstance(value, dict) and isinstance(base.get(key), dict):
            raise InputError(f"{where}: {name}: expected a table, got {value!r}")
        if key not in base:
            known = ", ".join(base)
            raise InputError(f"{where}: {section or 'recipe'}: unknown key {key!r}; known: {known}")
        replace_whole = not isinstance(base[key], dict) or key in REPLACED_WHOLE
        out[key] = value if replace_whole else _merge(base[key], value, where, name)
    return out


def complete(recipe: dict, where: str = "recipe") -> dict:
    """Fill a partial recipe with the defaults and check every value against SCHEMA."""
    if not isinstance(recipe, dict):
        raise InputError(f"{where}: expected a table of settings, got {type(recipe).__name__}")
    full = _merge(DEFAULTS, recipe, where)
    try:
        SCHEMA.check(full, "")
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    return full


BARE_WORD = re.compile(r"[A-Za-z_][\w-]*")


def parse_setting(item: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value); the value is TOML, or a bare word
    taken as a string (`cluster.method=kmeans`)."""
    key, sep, text = item.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise InputError(f"--set {item}: expected section.key=value")
    try:
        return path, tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        if BARE_WORD.fullmatch(text.strip()):
            return path, text.strip()
        raise InputError(f"--set {item}: value is not valid TOML ({e})") from None


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` settings (e.g. `train.epochs=2`, `cluster.method=kmeans`).

    A name given where a step's table belongs stands for that step with its defaults.
    """
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        path, value = parse_setting(item)
        node = recipe
        for depth, part in enumerate(path[:-1]):
            if not isinstance(node.get(part), dict):
                where = ".".join(path[:depth]) or "recipe"
                known = ", ".join(k for k, v in node.items() if isinstance(v, dict))
                raise InputError(f"--set {item}: {where} has no section {part!r}; known: {known}")
            node = node[part]
        current = node.get(path[-1])
        if isinstance(value, str) and isinstance(current, dict) and "name" in current:
            value = {"name": value}
        node[path[-1]] = value
    return complete(recipe, where="--set")


def load_recipe(name_or_path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """A built-in recipe by name (`baseline`, `improved`, `best`, ...) or a TOML file by path.

    A recipe may start from another: `base = "best"` (a built-in name, or a path relative to the
    file) takes that recipe and changes only what this file states.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = RECIPES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise InputError(
                f"unknown recipe {str(name_or_path)!r}; built in: {', '.join(builtin_recipes())}"
            )
    check_input_file(path, "recipe file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a valid TOML recipe ({e})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the recipe ({os_reason(e)})") from None
    base = data.pop("base", None)
    if base is None:
        recipe = complete(data, where=str(path))
    else:
        if path.resolve() in _seen:
            raise InputError(f"{path}: recipes name each other as base in a cycle")
        if not isinstance(base, str):
            raise InputError(f"{path}: base = {base!r}: expected a recipe name or file")
        base_path = base if not Path(base).suffix else path.parent / base
        recipe = _merge(load_recipe(base_path, (*_seen, path.resolve())), data, str(path))
    recipe["name"] = path.stem
    return recipe
