"""Loading and validating image arrays, and turning them into model input."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data

from aecluster.errors import InputError
from aecluster.files import check_input_file, os_reason

IMAGE_SIZE = 32
NPY_MAGIC = b"\x93NUMPY"


def _check_npy_header(path: Path) -> None:
    """Read and check the header before NumPy allocates anything: a negative or impossible
    shape, a pickled dtype or a header promising more bytes than the file holds is refused."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise InputError(f"{path}: not an .npy file (no NumPy header)")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
            if read_header is None:
                raise InputError(f"{path}: unsupported .npy format version {version}")
            shape, _, dtype = read_header(f)
        except (ValueError, EOFError, SyntaxError, TypeError, OverflowError) as e:
            reason = " ".join(str(e).split())[:120]
            raise InputError(f"{path}: truncated or corrupt .npy header ({reason})") from None
        if dtype.hasobject:
            raise InputError(
                f"{path}: holds Python objects (a pickled array); refusing to unpickle it"
            )
        if any(d < 0 for d in shape):
            raise InputError(f"{path}: corrupt .npy header: negative shape {shape}")
        if any(d >= 2**62 for d in shape):
            raise InputError(f"{path}: corrupt .npy header: impossible shape {shape}")
        needed = math.prod(shape) * dtype.itemsize
        if needed > size - f.tell():
            raise InputError(
                f"{path}: truncated or corrupt .npy file: its header promises shape {shape} "
                f"({needed:,} bytes) but {size - f.tell():,} bytes follow"
            )


def _open_npy(path: str | os.PathLike, *, mmap: bool) -> np.ndarray:
    path = check_input_file(path, "file")
    try:
        _check_npy_header(path)
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        if isinstance(e, InputError):
            raise
        if "allow_pickle" in str(e) or "object" in str(e):
            raise InputError(
                f"{path}: holds Python objects (a pickled array); refusing to unpickle it"
            ) from None
        raise InputError(f"{path}: truncated or corrupt .npy file ({e})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({os_reason(e)})") from None
    except (EOFError, OverflowError) as e:
        raise InputError(f"{path}: truncated or corrupt .npy file ({e})") from None


def as_images(array: np.ndarray, source: str = "array") -> np.ndarray:
    """Validate an image array and return it as uint8 (N, H, W, 3).

    Accepted: uint8 or integer 0..255, float in [0, 1] or [0, 255]; (N, H, W, 3), channels-first
    (N, 3, H, W), single-channel (N, H, W) or (N, H, W, 1). A uint8 NHWC array (or memmap) is
    returned as is, without a copy. Anything else raises InputError naming `source`.
    """
    if not isinstance(array, np.ndarray):
        array = np.asarray(array)
    if array.dtype == object or array.dtype.kind not in "uif":
        raise InputError(f"{source}: dtype {array.dtype} is not an image type (uint8 or float)")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise InputError(
            f"{source}: shape {array.shape} has rank {array.ndim}; expected (N, 32, 32, 3) images"
        )
    if array.shape[-1] not in (1, 3) and array.shape[1] in (1, 3):
        array = np.transpose(array, (0, 2, 3, 1))
    if array.shape[-1] not in (1, 3):
        raise InputError(
            f"{source}: shape {array.shape} has no channel axis of size 1 or 3; "
            "expected (N, 32, 32, 3) images"
        )
    n, h, w, _ = array.shape
    if n == 0:
        raise InputError(f"{source}: holds no images (shape {array.shape})")
    if min(h, w) < 8:
        raise InputError(f"{source}: images are {h}x{w}; at least 8x8 is needed")
    if array.dtype != np.uint8:
        array = _to_uint8(array, source)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


CHUNK = 1024  # images converted at a time: memory stays bounded for any N


def _to_uint8(array: np.ndarray, source: str) -> np.ndarray:
    """Integers 0..255 as they are; floats on the [0, 1] scale when none exceeds 1.5 (values
    just outside [0, 1], as resampling leaves them, are clipped), else on the 0..255 scale."""
    lo, hi = np.inf, -np.inf
    for start in range(0, len(array), CHUNK):
        chunk = np.asarray(array[start : start + CHUNK])
        if array.dtype.kind == "f" and not np.isfinite(chunk).all():
            raise InputError(f"{source}: contains NaN or infinite values")
        lo, hi = min(lo, chunk.min()), max(hi, chunk.max())
    unit = array.dtype.kind == "f" and hi <= 1.5
    limits = (-0.5, 1.5) if unit else (-0.5, 255.5) if array.dtype.kind == "f" else (0, 255)
    if lo < limits[0] or hi > limits[1]:
        raise InputError(
            f"{source}: values range over [{lo:g}, {hi:g}]; expected [0, 1] floats or 0..255"
        )
    scale = 255.0 if unit else 1.0
    out = np.empty(array.shape, dtype=np.uint8)
    for start in range(0, len(array), CHUNK):
        chunk = np.array(array[start : start + CHUNK], dtype=np.float32)  # a copy, never a view
        chunk *= scale
        np.clip(np.rint(chunk, out=chunk), 0, 255, out=chunk)
        out[start : start + CHUNK] = chunk
    return out


def load_images(path: str | os.PathLike, *, mmap: bool = True) -> np.ndarray:
    """Load an .npy image file (never unpickling) and validate it with `as_images`."""
    return as_images(_open_npy(path, mmap=mmap), source=str(path))


def load_labels(path: str | os.PathLike, n_images: int | None = None) -> np.ndarray:
    """Load integer class labels of shape (N,)."""
    labels = np.asarray(_open_npy(path, mmap=False))
    if labels.ndim != 1:
        raise InputError(f"{path}: shape {labels.shape}; expected labels of shape (N,)")
    if labels.dtype.kind not in "iu":
        raise InputError(f"{path}: dtype {labels.dtype}; expected integer labels")
    if n_images is not None and len(labels) != n_images:
        raise InputError(f"{path}: {len(labels)} labels for {n_images} images")
    return labels.astype(np.int64)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, 32, 32) scaled to [-1, 1] (resized if needed)."""
    if images.dtype != np.uint8:
        raise InputError(f"expected uint8 images, got {images.dtype}; convert with as_images")
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float()
    x = x.div_(127.5).sub_(1.0)
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
    return x.contiguous()


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """Inverse of `to_tensor`: float [-1, 1] (N, 3, H, W) -> uint8 (N, H, W, 3)."""
    x = ((x.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def fingerprint(images: np.ndarray) -> str:
    """A digest of the images (their shape and an even sample of up to 4096 of them), enough
    to tell whether a run directory was trained on these images."""
    step = max(1, len(images) // 4096)
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images[::step]).tobytes())
    return digest.hexdigest()[:16]


class ImageBatches(torch.utils.data.Dataset):
    """uint8 image rows fetched a batch at a time: `dataset[indices]` -> uint8 (B, H, W, 3).

    The images stay where they are (a memory-mapped `.npy` is read from the page cache, never
    loaded whole); a loader worker reopens a memory map by its file name instead of receiving a
    pickled copy of the array.
    """

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.images[indices.numpy()]))

    def __getstate__(self) -> dict:
        images = self.images
        if isinstance(images, np.memmap) and images.filename is not None:
            return {"memmap": (images.filename, images.dtype, images.offset, images.shape)}
        return {"images": images}

    def __setstate__(self, state: dict) -> None:
        if "memmap" in state:
            filename, dtype, offset, shape = state["memmap"]
            self.images = np.memmap(filename, dtype, "r", offset, shape)
        else:
            self.images = state["images"]


def batch_loader(
    images: np.ndarray, batches: list[torch.Tensor], workers: int = 0
) -> torch.utils.data.DataLoader:
    """A loader yielding uint8 batches of `images` in the order of `batches` (index tensors).

    Workers only read rows; every random choice (order, augmentation) stays in the training
    process, so any number of workers gives the same result.
    """
    return torch.utils.data.DataLoader(
        ImageBatches(images), batch_size=None, sampler=batches, num_workers=workers,
        prefetch_factor=4 if workers else None,
    )  # fmt: skip


def iter_batches(images: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
    """Model-ready tensors of consecutive images, converted one batch at a time."""
    for start in range(0, len(images), batch_size):
        yield to_tensor(images[start : start + batch_size])
