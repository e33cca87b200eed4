"""Images from anywhere: an array, an `.npy`, a folder (searched recursively), a text file listing
image paths, a glob, or a list of paths.

Decoding policy for image files: any image Pillow reads (PNG, JPEG, WebP, BMP, TIFF, GIF's first
frame); EXIF orientation applied; transparency composited onto white; 16-bit images scaled to
8 bits; grayscale and palette images converted to RGB; then the shorter side is resized to the
model's input size and the centre is cropped (`PIL.ImageOps.fit`). Files whose extension is not an
image's are ignored; an image file that cannot be read is listed in `skipped` with the reason and
the run goes on (`strict=True` makes it an error). Decoding runs in parallel threads.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aecluster.data import IMAGE_SIZE, as_images, load_images
from aecluster.errors import InputError
from aecluster.files import (
    atomic_path,
    check_input_file,
    new_folder,
    os_reason,
    write_csv,
    write_text_atomic,
)
from aecluster.progress import progress_bar

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".jfif"}
)
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
GLOB_CHARS = frozenset("*?[")

Source = str | os.PathLike | np.ndarray | Sequence[str | os.PathLike]


@dataclass
class ImageSet:
    """Decoded images with where they came from.

    `paths` holds one name per image, as given (relative to the folder for a folder), or is
    None for an array or `.npy`; `skipped` lists (path, reason) for files that were not read.
    """

    images: np.ndarray
    paths: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] | None = None  # where each image was read from, for --export

    def __len__(self) -> int:
        return len(self.images)


def decode_image(path: str | os.PathLike, size: int = IMAGE_SIZE) -> np.ndarray:
    """One image file as uint8 (size, size, 3), by the policy in this module's docstring."""
    with Image.open(path) as img:
        img.draft("RGB", (2 * size, 2 * size))  # JPEG: decode at a reduced scale, much faster
        img.seek(0)
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).clip(0, 255)
                                  .astype(np.uint8))  # fmt: skip
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        img = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.BICUBIC)
        return np.asarray(img, dtype=np.uint8)


def _try_decode(path: Path, size: int) -> np.ndarray | str:
    """The image, or the reason it could not be read."""
    try:
        return decode_image(path, size)
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except OSError as e:
        return os_reason(e) if getattr(e, "errno", None) else f"corrupt image ({e})"
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f"corrupt image ({e})"


def list_image_files(source: str | os.PathLike | Sequence) -> tuple[list[Path], list[str]]:
    """The image files a source names, and the name to report for each."""
    if not isinstance(source, str | os.PathLike):
        files = [Path(p) for p in source]
        return files, [str(p) for p in source]
    text = str(source)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                       and not p.is_dir())  # fmt: skip
        return files, [p.relative_to(path).as_posix() for p in files]
    if not path.exists() and GLOB_CHARS & set(text):
        names = sorted(n for n in globlib.glob(text, recursive=True)
                       if Path(n).suffix.lower() in IMAGE_EXTENSIONS)  # fmt: skip
        if not names:
            raise InputError(f"{text}: the pattern matches no image files")
        return [Path(n) for n in names], names
    check_input_file(path, "file of images")
    if path.suffix.lower() in LIST_EXTENSIONS:
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{path}: a path list must be UTF-8 text") from None
        names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return [p if (p := Path(n)).is_absolute() else path.parent / p for n in names], names
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [path], [text]
    raise InputError(
        f"{path}: not an image source; give a folder, an .npy, a .txt list of paths, a glob "
        "or an image file"
    )


DECODE_CHUNK = 4096  # files decoded at a time: memory stays bounded for any number of files


def read_images(
    source: Source,
    *,
    size: int = IMAGE_SIZE,
    strict: bool = False,
    workers: int | None = None,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
) -> ImageSet:
    """Images from any source (see the module docstring), validated, as an ImageSet.

    With `cache` (a folder), decoded image files are kept there as a uint8 `.npy` (read back
    memory-mapped) with a manifest of the files' names, sizes and modification times; a later
    call on the same unchanged files reads the cache instead of decoding again.
    """
    if isinstance(source, np.ndarray):
        return ImageSet(as_images(source, "array"))
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".npy":
        return ImageSet(load_images(source))
    files, names = list_image_files(source)
    if not files:
        raise InputError(f"{source}: holds no image files")
    if cache is None:
        images, skipped_at = _decode_all(files, size, workers, progress)
        return _image_set(source, files, names, images, skipped_at, strict)
    key = _manifest_key(files, size)
    if (found := _read_cache(Path(cache), key)) is not None:
        return _image_set(source, files, names, *found, strict)
    with new_folder(cache), tempfile.TemporaryDirectory(dir=cache, prefix=".decoding.") as tmp:
        images, skipped_at = _decode_all(files, size, workers, progress, Path(tmp) / "x.npy")
        data = _image_set(source, files, names, images, skipped_at, strict)
        data.images = _write_cache(Path(cache), key, images, skipped_at)
        return data


def _image_set(
    source: Source, files: list[Path], names: list[str], images: np.ndarray,
    skipped_at: list[tuple[int, str]], strict: bool,
) -> ImageSet:  # fmt: skip
    skipped = [(names[i], reason) for i, reason in skipped_at]
    if skipped and strict:
        raise InputError(f"{skipped[0][0]}: {skipped[0][1]} (--strict)")
    if len(skipped) == len(files):
        raise InputError(f"{source}: none of its {len(files)} image files could be read "
                         f"(first: {skipped[0][0]}: {skipped[0][1]})")  # fmt: skip
    dropped = {i for i, _ in skipped_at}
    kept = [i for i in range(len(files)) if i not in dropped]
    return ImageSet(images, [names[i] for i in kept], skipped, [files[i] for i in kept])


def _decode_all(
    files: list[Path], size: int, workers: int | None, progress: bool, into: Path | None = None
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The readable files' images, in order, and (index, reason) for the others; in RAM, or
    memory-mapped in the `.npy` file `into` (its rows past the readable ones stay unused)."""
    shape = (len(files), size, size, 3)
    if into is None:
        images = np.empty(shape, dtype=np.uint8)
    else:
        images = np.lib.format.open_memmap(into, mode="w+", dtype=np.uint8, shape=shape)
    skipped, filled = [], 0
    bar = progress_bar(total=len(files), desc="decode images", enabled=progress, leave=False)
    with ThreadPoolExecutor(workers or min(32, os.cpu_count() or 1)) as pool:
        for start in range(0, len(files), DECODE_CHUNK):
            chunk = files[start : start + DECODE_CHUNK]
            for i, result in enumerate(pool.map(lambda p: _try_decode(p, size), chunk), start):
                if isinstance(result, str):
                    skipped.append((i, result))
                else:
                    images[filled] = result
                    filled += 1
            bar.update(len(chunk))
    bar.close()
    return images[:filled], skipped


def _manifest_key(files: list[Path], size: int) -> str:
    """A digest of every file's path, size and modification time: the cache is valid while
    none of them changes."""
    digest = hashlib.sha256(f"{size}".encode())
    for path in files:
        try:
            st = path.stat()
            digest.update(f"\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"\0{path}\0missing".encode())
    return digest.hexdigest()


CACHE_IMAGES, CACHE_MANIFEST = "images.npy", "images.json"


def _read_cache(cache: Path, key: str) -> tuple[np.ndarray, list[tuple[int, str]]] | None:
    """The cached images and skipped files of an earlier decode of the same files, if any."""
    try:
        manifest = json.loads((cache / CACHE_MANIFEST).read_text())
        if manifest.get("key") != key:
            return None
        images = load_images(cache / CACHE_IMAGES)
    except (OSError, ValueError, InputError):
        return None  # absent, stale or damaged: decoded again and replaced
    skipped = [(int(i), str(reason)) for i, reason in manifest["skipped"]]
    return images, skipped


def _write_cache(
    cache: Path, key: str, images: np.ndarray, skipped: list[tuple[int, str]]
) -> np.ndarray:
    """Put the decoded images in place as the cache (moved, or copied in chunks to their true
    length when files were skipped) and return them memory-mapped from there."""
    with atomic_path(cache / CACHE_IMAGES) as tmp:
        if skipped:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=images.shape)
            for start in range(0, len(images), DECODE_CHUNK):
                out[start : start + DECODE_CHUNK] = images[start : start + DECODE_CHUNK]
            out.flush()
        else:
            images.flush()
            os.replace(images.filename, tmp)
    write_text_atomic(cache / CACHE_MANIFEST, json.dumps({"key": key, "skipped": skipped}))
    return load_images(cache / CACHE_IMAGES)


def write_skipped(path: str | os.PathLike, skipped: list[tuple[str, str]]) -> None:
    """`path,reason` CSV of the files that were not read."""
    write_csv(path, ("path", "reason"), skipped)


def export_clusters(
    folder: str | os.PathLike, data: ImageSet, labels: np.ndarray, copy: bool = False
) -> Path:
    """One sub-folder per cluster (`cluster_0`, ...) holding a symlink to (or, with `copy`, a
    copy of) each image file, under its name relative to the source."""
    folder = Path(folder)
    if data.files is None:
        raise InputError(f"{folder}: --export needs image files, not an array or .npy")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder}: the export folder must be new or empty")
    for name, file, label in zip(data.paths, data.files, labels, strict=True):
        dest = folder / f"cluster_{int(label)}" / name.lstrip("/").replace("../", "")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copy2(file, dest)
        else:
            dest.symlink_to(Path(file).resolve())
    return folder
