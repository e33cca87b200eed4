"""Images from anywhere: generated folders of mixed formats, sizes and modes, with traps."""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import pytest
from conftest import CHROMIUM, render_in_chromium, two_kinds
from PIL import Image

from aecluster.cli import main
from aecluster.errors import InputError
from aecluster.sources import decode_image, export_clusters, read_images


@pytest.fixture
def folder(tmp_path):
    """24 images in nested folders, every format and mode, plus a corrupt, an empty and a
    non-image file, and names with spaces and non-ASCII letters."""
    images, y = two_kinds(24)
    root = tmp_path / "photos"
    (root / "nested" / "deeper").mkdir(parents=True)
    formats = [("png", "RGB"), ("jpg", "RGB"), ("png", "L"), ("webp", "RGBA"), ("gif", "P"),
               ("bmp", "RGB"), ("tiff", "RGB"), ("png", "I;16")]  # fmt: skip
    names = []
    for i, img in enumerate(images):
        ext, mode = formats[i % len(formats)]
        sub = root / ["", "nested", "nested/deeper"][i % 3]
        name = f"bild {i:02d} ü.{ext}" if i % 4 == 0 else f"img_{i:02d}.{ext}"
        pil = Image.fromarray(img).resize((32 + 8 * (i % 3), 32 + 4 * (i % 2)))
        if mode == "I;16":
            pil = Image.fromarray(np.asarray(pil.convert("L"), np.uint16) * 257)
        else:
            pil = pil.convert(mode)
        pil.save(sub / name)
        names.append(str((sub / name).relative_to(root)))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.md").write_text("not an image")
    return root, dict(zip(names, y, strict=True))


def test_a_folder_is_read_recursively_with_every_format_and_mode(folder):
    root, truth = folder
    data = read_images(root)
    assert data.images.shape == (24, 32, 32, 3) and data.images.dtype == np.uint8
    assert sorted(data.paths) == sorted(truth)
    assert sorted(p for p, _ in data.skipped) == ["corrupt.jpg", "empty.png"]
    assert all(reason for _, reason in data.skipped)
    decoded = dict(zip(data.paths, data.images, strict=True))
    for path in [p for p in truth if p.endswith((".jpg", ".bmp", ".webp"))]:  # colour formats
        red, blue = decoded[path][..., 0].mean(), decoded[path][..., 2].mean()
        assert (red > blue) == bool(truth[path]), path  # the red kind stays red


def test_strict_makes_an_unreadable_file_fatal(folder):
    with pytest.raises(InputError, match="corrupt.jpg"):
        read_images(folder[0], strict=True)


def test_lists_globs_and_single_files(folder, tmp_path):
    root, truth = folder
    listing = tmp_path / "list.txt"
    listing.write_text("# my picks\n" + "\n".join(f"photos/{p}" for p in list(truth)[:5]) + "\n")
    assert read_images(listing).paths == [f"photos/{p}" for p in list(truth)[:5]]
    pngs = read_images(str(root / "**" / "*.png"))
    assert len(pngs) == sum(p.endswith(".png") for p in truth)
    one = next(iter(truth))
    assert len(read_images(root / one)) == 1
    with pytest.raises(InputError, match="matches no image files"):
        read_images(str(root / "*.nothing"))


def test_decoding_policy_shorter_side_then_centre_crop(tmp_path):
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # the centre square is white, the sides black
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = decode_image(tmp_path / "wide.png")
    assert out.shape == (32, 32, 3) and out.mean() > 250
    rgba = np.zeros((32, 32, 4), np.uint8)  # fully transparent: composited onto white
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert decode_image(tmp_path / "clear.png").min() == 255
    exif = Image.fromarray(wide)
    info = Image.Exif()
    info[0x0112] = 6  # rotated: the image is really 40 wide, 80 tall
    exif.save(tmp_path / "rotated.jpg", exif=info)
    assert decode_image(tmp_path / "rotated.jpg").mean() > 200


def test_cluster_command_writes_a_csv_keyed_by_file_and_exports(folder, tmp_path):
    root, truth = folder
    out, export = tmp_path / "run", tmp_path / "by-cluster"
    code = main(["cluster", str(root), "--clusters", "2", "--out", str(out), "--recipe",
                 "demo", "--set", "train.epochs=2", "--set", "cluster.n_clusters=2",
                 "--export", str(export), "--quiet"])  # fmt: skip
    assert code == 0
    with open(out / "clusters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == sorted(truth)
    assert all(0 <= float(r["confidence"]) <= 1 and r["cluster"] in "01" for r in rows)
    with open(out / "skipped.csv", newline="") as f:
        assert sorted(r["path"] for r in csv.DictReader(f)) == ["corrupt.jpg", "empty.png"]
    page = (out / "index.html").read_text()
    assert page.count("<figure") >= 20 and "bild 00 ü" in page  # file names in captions
    if CHROMIUM:  # a person can judge the montages at a glance: every image loads, none blank
        dom, pixels = render_in_chromium(out / "index.html", tmp_path)
        loaded, total = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom).groups()
        assert loaded == total and int(total) >= 20
        assert pixels.std() > 0.05
    links = {p.relative_to(export).as_posix(): p for p in export.rglob("*") if p.is_symlink()}
    by_row = {f"cluster_{r['cluster']}/{r['path']}": r["path"] for r in rows}
    assert sorted(links) == sorted(by_row)
    assert all(os.path.samefile(links[k], root / by_row[k]) for k in links)


def test_predict_with_files_and_npy_formats(folder, tmp_path):
    from aecluster.estimator import AECluster

    root, truth = folder
    est = AECluster(n_clusters=2, recipe="baseline", settings=("train.epochs=1",),
                    budget_minutes=None).fit(two_kinds(32)[0], out=tmp_path / "m.pth")  # fmt: skip
    assert main(["predict", "--checkpoint", str(tmp_path / "m.pth"), "--data", str(root),
                 "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0  # fmt: skip
    assert (tmp_path / "p.csv").read_text().startswith("path,cluster,confidence\n")
    np.save(tmp_path / "x.npy", two_kinds(8)[0])
    args = ["--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "q.csv"), "--quiet"]
    assert main(["predict", "--checkpoint", str(tmp_path / "m.pth"), *args]) == 0
    lines = (tmp_path / "q.csv").read_text().splitlines()
    assert lines[0] == "id,label" and [line.split(",")[0] for line in lines[1:]] == list(
        map(str, range(8))
    )
    assert est.labels_.shape == (32,)


def test_export_refuses_a_folder_with_files(folder, tmp_path):
    root, _ = folder
    data = read_images(root)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(InputError, match="must be new or empty"):
        export_clusters(tmp_path / "busy", data, np.zeros(len(data), int))


def test_cluster_auto_reports_the_k_curve(folder, tmp_path):
    root, _ = folder
    out = tmp_path / "run"
    code = main(["cluster", str(root), "--clusters", "auto", "--k-range", "2", "4", "--out",
                 str(out), "--recipe", "demo", "--set", "train.epochs=2", "--quiet"])  # fmt: skip
    assert code == 0
    page = (out / "index.html").read_text()
    assert "Number of clusters" in page and "chosen among 2..4" in page
    assert (out / "k.png").exists()
