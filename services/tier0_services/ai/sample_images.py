"""The sample image catalog: metadata from `samples/images/catalog.json`, pictures drawn by code.

Nothing here is a photograph: each sample is a small PNG drawn with numpy (sky, ground, the
equipment's silhouette, the workers with or without yellow hard hats, a tablet when the caption
says so) and stamped "SAMPLE" in the corner, so a sample can never be mistaken for site imagery.
The PNG encoder is the minimal one from the spec (zlib + CRC), no Pillow.
"""

import base64
import json
import struct
import zlib
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from tier0_contract.models import Ident

WIDTH, HEIGHT = 160, 120
Canvas = npt.NDArray[np.uint8]

# 3x5 bitmap glyphs, rows top to bottom, for the "SAMPLE" stamp.
_GLYPHS = {
    "S": ["111", "100", "111", "001", "111"],
    "A": ["010", "101", "111", "101", "101"],
    "M": ["101", "111", "111", "101", "101"],
    "P": ["110", "101", "110", "100", "100"],
    "L": ["100", "100", "100", "100", "111"],
    "E": ["111", "100", "110", "100", "111"],
}


class ImageMeta(BaseModel):
    """Catalog metadata of one image (samples and uploads alike)."""

    image_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    site_id: Ident
    device_type: Ident
    description: str = Field(min_length=1, max_length=1000)
    tags: list[str] = Field(default_factory=list, max_length=32)


class SampleImage(ImageMeta):
    workers: int = 0
    hard_hats: bool = True
    tablet: bool = False


def load_catalog() -> list[SampleImage]:
    raw = resources.files("tier0_services.ai").joinpath("samples/images/catalog.json").read_text()
    data: dict[str, Any] = json.loads(raw)
    return [SampleImage.model_validate(item) for item in data["images"]]


def caption(meta: ImageMeta) -> str:
    """The text the local model embeds for an image: description, tags, type and site."""
    tags = "; ".join(meta.tags)
    kind = meta.device_type.replace("_", " ")
    return f"{meta.description} Tags: {tags}. Equipment: {kind}. Site: {meta.site_id}."


def png_bytes(pixels: Canvas) -> bytes:
    """Encode an (h, w, 3) uint8 array as a PNG (8-bit RGB, filter 0 on every row)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _rect(img: Canvas, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
    img[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = rgb


def _equipment(img: Canvas, device_type: str, seed: int) -> None:
    steel = (120, 125, 135)
    if device_type == "turbine":
        _rect(img, 40, 50, 110, 88, steel)  # enclosure
        _rect(img, 95, 20, 105, 50, (90, 90, 95))  # exhaust stack
        _rect(img, 30, 60, 40, 80, (70, 70, 80))  # intake
    elif device_type == "thermal_engine":
        _rect(img, 45, 55, 105, 88, (150, 60, 50))  # engine block
        for i in range(4):
            _rect(img, 50 + 14 * i, 45, 58 + 14 * i, 55, steel)  # cylinders
        _rect(img, 105, 65, 125, 70, (60, 60, 60))  # pipe
    elif device_type == "electrical_rotor":
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        ring = (xx - 75) ** 2 + (yy - 65) ** 2
        img[(ring < 25**2) & (ring > 12**2)] = (184, 115, 51)  # copper windings
        img[ring <= 12**2] = steel
        _rect(img, 35, 63, 115, 67, (80, 80, 80))  # shaft
    else:  # oil & gas: derrick and wellhead
        for step in range(40):
            half = 4 + step // 3
            _rect(img, 75 - half, 48 + step, 75 - half + 2, 49 + step, (60, 60, 60))
            _rect(img, 75 + half - 2, 48 + step, 75 + half, 49 + step, (60, 60, 60))
        _rect(img, 70, 20, 80, 48, (60, 60, 60))
        _rect(img, 100, 75, 110, 88, (200, 40, 40))  # valves
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 12, size=img.shape, dtype=np.uint8)
    np.add(img, noise, out=img, casting="unsafe")


def _worker(img: Canvas, x: int, hard_hat: bool, tablet: bool) -> None:
    _rect(img, x, 72, x + 6, 88, (30, 60, 160))  # coveralls
    _rect(img, x + 1, 66, x + 5, 72, (230, 190, 160))  # head
    if hard_hat:
        _rect(img, x, 63, x + 6, 66, (250, 210, 0))  # yellow hard hat
    if tablet:
        _rect(img, x + 6, 74, x + 11, 80, (20, 20, 20))


def _stamp(img: Canvas) -> None:
    _rect(img, 2, 2, 2 + 6 * 4 + 2, 10, (255, 255, 255))
    for n, letter in enumerate("SAMPLE"):
        for r, row in enumerate(_GLYPHS[letter]):
            for c, bit in enumerate(row):
                if bit == "1":
                    img[3 + r, 3 + n * 4 + c] = (200, 0, 0)


def render(sample: SampleImage) -> bytes:
    """Deterministic PNG of one sample (same bytes on every machine)."""
    img: Canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    img[:60] = (150, 190, 230)
    img[60:] = (140, 120, 90)
    seed = zlib.crc32(sample.image_id.encode())
    _equipment(img, sample.device_type, seed)
    for i in range(sample.workers):
        _worker(img, 12 + 20 * i if i < 2 else 120, sample.hard_hats, sample.tablet and i == 0)
    _stamp(img)
    return png_bytes(img)
