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
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aecluster.data import IMAGE_SIZE, as_images, load_images
from aecluster.errors import InputError
from aecluster.files import check_input_file, os_reason, write_csv
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


def read_images(
    source: Source,
    *,
    size: int = IMAGE_SIZE,
    strict: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> ImageSet:
    """Images from any source (see the module docstring), validated, as an ImageSet."""
    if isinstance(source, np.ndarray):
        return ImageSet(as_images(source, "array"))
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() == ".npy":
        return ImageSet(load_images(source))
    files, names = list_image_files(source)
    if not files:
        raise InputError(f"{source}: holds no image files")
    workers = workers or min(32, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(progress_bar(pool.map(lambda p: _try_decode(p, size), files),
                                    total=len(files), desc="decode images", enabled=progress,
                                    leave=False))  # fmt: skip
    skipped = [(n, r) for n, r in zip(names, decoded, strict=True) if isinstance(r, str)]
    if skipped and strict:
        raise InputError(f"{skipped[0][0]}: {skipped[0][1]} (--strict)")
    kept = [i for i, r in enumerate(decoded) if not isinstance(r, str)]
    if not kept:
        raise InputError(f"{source}: none of its {len(files)} image files could be read "
                         f"(first: {skipped[0][0]}: {skipped[0][1]})")  # fmt: skip
    return ImageSet(np.stack([decoded[i] for i in kept]), [names[i] for i in kept], skipped,
                    [files[i] for i in kept])  # fmt: skip


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
