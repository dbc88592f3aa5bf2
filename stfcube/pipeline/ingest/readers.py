"""Lazy scene readers: GeoTIFF/COG and ENVI read window by window with rasterio, decoded to
common units.

A :class:`Scene` says what to read (file, bands, date, role) and how to decode it (scale,
offset, nodata, mask file and its clear values). Every front-end (YAML/CSV manifests, STAC
catalogs) produces scenes; :func:`read_scene` turns one into lazy dask-backed arrays on a
target :class:`~stfcube.pipeline.geometry.grid.Grid`:

- ``values`` (band, y, x) float32 in common units ``raw * scale + offset``, NaN where invalid;
- ``valid`` (y, x) bool: inside the scene footprint, no band at nodata or non-finite, and the
  mask (when given) holding one of its clear values.

When the scene's own grid differs from the target grid, GDAL warps it (a ``WarpedVRT``, read
window by window) with the stated resampling; masks are always warped with ``nearest``. Each
chunk is one task that opens the files, reads its window and decodes it; nothing is read until
the arrays are computed, so memory is bounded by the chunks. :func:`sample_values`
reads, window by window, a sample of a scene's decoded values before anything is written (to
check that it has data and that its values are in the cube's units).
"""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from dask.array.core import normalize_chunks
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from stfcube.pipeline.defaults import RESAMPLING_METHODS as RESAMPLING_METHODS
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.geometry.grid import Grid, PixelWindow

#: Roles a scene can play. ``truth`` scenes are fine-sensor images kept for evaluation only.
ROLES = ("fine", "coarse", "truth")

#: Drivers whose files are raw pixel arrays: a short file is detected from its size.
_RAW_DRIVERS = frozenset({"ENVI", "EHdr", "BT", "GenBin", "ISCE", "PAux"})
#: Side, in pixels, of the windows :func:`sample_values` reads at a time.
SCAN_WINDOW = 512
#: :func:`sample_values` stops reading once its sample holds this many pixels with data.
SAMPLE_PIXELS = 65_536


@dataclass(frozen=True, slots=True)
class RasterInfo:
    """Metadata of one raster file, read without its pixels (see :func:`probe_raster`)."""

    path: str
    driver: str
    count: int
    dtype: str
    nodata: float | None
    grid: Grid
    descriptions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scene:
    """One image of one sensor at one date: what to read and how to decode it.

    Attributes
    ----------
    role
        ``"fine"``, ``"coarse"`` or ``"truth"``.
    date
        Acquisition day (``datetime64[D]``); the cube's time axis is daily.
    path
        Local path or URL of the (multi-band) raster.
    bands
        1-based band indexes to read, in the order of the cube's ``band`` axis.
    scale, offset
        Decoding to common units: ``value = raw * scale + offset``.
    nodata
        Raw value meaning "no data"; ``None`` uses the file's own nodata (if any).
    mask_path
        Optional single-band mask/QA raster on the scene's grid.
    mask_valid_values
        Mask values meaning "clear"; any other value (or the mask's absence of data) is invalid.
    band_labels
        Per band read, the names the source gives it (STAC ``eo:bands`` ``name`` and
        ``common_name``), checked against the cube's band names; empty when it gives none.
    """

    role: str
    date: np.datetime64
    path: str
    bands: tuple[int, ...]
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    mask_path: str | None = None
    mask_valid_values: tuple[int, ...] = ()
    band_labels: tuple[tuple[str, ...], ...] = ()

    def label(self) -> str:
        """``role date path[bands]`` for messages and reports."""
        return f"{self.role} {self.date} {self.path} bands {list(self.bands)}"


@dataclass(frozen=True, slots=True)
class SceneStack:
    """Everything a front-end found: the scenes plus the metadata shared by all of them.

    Attributes
    ----------
    source
        The manifest or catalog the scenes came from (for messages).
    scenes
        All scenes, any role, in the source's order.
    band_names
        Names of the cube's ``band`` axis (one per entry of each scene's ``bands``).
    fine_sensor, coarse_sensor
        Sensor names recorded in the cube attributes.
    units
        Common units of the values (see :mod:`stfcube.pipeline.store.cube`).
    coarse_ratio
        Declared coarse/fine pixel ratio for coarse data delivered on the fine grid (for example
        simulated block means); ``None`` to derive it from the grids.
    """

    source: str
    scenes: tuple[Scene, ...]
    band_names: tuple[str, ...]
    fine_sensor: str = "fine"
    coarse_sensor: str = "coarse"
    units: str = "reflectance x 10000"
    coarse_ratio: int | None = None


def _is_url(path: str) -> bool:
    return "://" in path


def _gdal_path(path: str) -> str:
    """Path GDAL can open: local paths as is, http(s) URLs through ``/vsicurl/``."""
    if path.startswith(("http://", "https://")):
        return f"/vsicurl/{path}"
    return path


def probe_raster(path: str) -> RasterInfo:
    """Open a raster's metadata and check that its pixels are all there.

    Parameters
    ----------
    path
        Local path or URL.

    Returns
    -------
    RasterInfo
        Driver, band count, dtype, nodata and grid.

    Raises
    ------
    InputError
        When the file is missing (or a broken link, a symlink loop, a directory), cannot be
        opened as a raster, is truncated or is rotated.
    """
    if not _is_url(path):
        problem = local_file_problem(Path(path))
        if problem is not None:
            raise InputError(path, problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(_gdal_path(path)) as src:
                if src.count == 0 and src.subdatasets:
                    raise InputError(
                        path, "holds several subdatasets: name one of them (GDAL syntax)"
                    )
                _check_complete(src, path)
                transform = src.transform
                if transform.b != 0 or transform.d != 0:
                    raise InputError(path, "rotated or sheared grids are not supported")
                return RasterInfo(
                    path=path,
                    driver=src.driver,
                    count=src.count,
                    dtype=src.dtypes[0],
                    nodata=src.nodata,
                    grid=Grid(src.crs, transform, src.height, src.width),
                    descriptions=tuple(d or "" for d in src.descriptions),
                )
    except RasterioError as exc:
        raise InputError(path, f"cannot be read as a raster ({exc})") from exc


def local_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file, in a few words; ``None`` when it is one.

    Tells apart a missing file, a broken symbolic link (naming its target), a symlink loop, a
    directory and a path the system refuses (permissions, a file used as a folder).
    """
    try:
        if path.is_dir():
            return "is a directory, not a file"
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: following its links never reaches a file"
        if exc.errno != errno.ENOENT:
            return exc.strerror or str(exc)
        if path.is_symlink():
            return f"broken symbolic link to {os.readlink(path)} (no such file)"
        return "file not found"
    return None


def _check_complete(src: rasterio.DatasetReader, path: str) -> None:
    """Raise if the file is shorter than its pixels need (truncated download or copy)."""
    if src.driver in _RAW_DRIVERS and not _is_url(path):
        itemsize = np.dtype(src.dtypes[0]).itemsize
        offset = int(src.tags(ns=src.driver).get("header_offset", 0) or 0)
        expected = offset + src.width * src.height * src.count * itemsize
        actual = os.path.getsize(src.files[0])
        if actual < expected:
            raise InputError(path, f"truncated: {actual} bytes where the header implies {expected}")
        return
    # Compressed or tiled formats: the last block of every band lies near the end of the file.
    last = Window(src.width - 1, src.height - 1, 1, 1)
    try:
        src.read(window=last)
    except RasterioError as exc:
        raise InputError(
            path, f"truncated or corrupt: its last pixels cannot be read ({exc})"
        ) from exc


def _chunks(shape: tuple[int, int], chunk: int) -> tuple[int, int]:
    return (min(chunk, shape[0]), min(chunk, shape[1]))


@dataclass(frozen=True, slots=True)
class RasterWindows:
    """One raster read window by window on a target grid.

    When the raster's own grid differs from ``target``, GDAL warps it (a ``WarpedVRT`` with
    ``resampling``, float32 with NaN outside the source). Each :meth:`read` opens the file, so
    windows can be read from several threads at once.
    """

    path: str
    bands: tuple[int, ...]
    source: Grid
    target: Grid
    resampling: str
    src_nodata: float | None

    @property
    def warped(self) -> bool:
        """Whether the raster is warped onto the target grid."""
        return not self.source.matches(self.target)

    def read(self, window: Window) -> np.ndarray:
        """Raw (band, rows, cols) pixels of ``window`` of the target grid: the file's dtype, or
        float32 with NaN outside the source when warped."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(_gdal_path(self.path)) as src:
                if not self.warped:
                    return src.read(list(self.bands), window=window)
                nodata_args = {} if self.src_nodata is None else {"src_nodata": self.src_nodata}
                with WarpedVRT(
                    src,
                    crs=self.target.crs,
                    transform=self.target.transform,
                    width=self.target.width,
                    height=self.target.height,
                    resampling=Resampling[self.resampling],
                    nodata=np.nan,
                    dtype="float32",
                    **nodata_args,
                ) as vrt:
                    return vrt.read(list(self.bands), window=window)

    def inside(self, window: Window, transformer: Transformer | None) -> np.ndarray:
        """(rows, cols) bool: pixel centres of ``window`` of the target grid that fall inside
        the raster (``transformer``: target CRS to the raster's, ``None`` when they agree)."""
        rows, cols = window.toranges()
        to, so = self.target.transform, self.source.transform  # north-up: no rotation terms
        col_centres, row_centres = np.meshgrid(np.arange(*cols) + 0.5, np.arange(*rows) + 0.5)
        x, y = to.c + to.a * col_centres, to.f + to.e * row_centres
        if transformer is not None:
            x, y = transformer.transform(x, y)
        sc, sr = (x - so.c) / so.a, (y - so.f) / so.e
        return (sc >= 0) & (sc < self.source.width) & (sr >= 0) & (sr < self.source.height)


@dataclass(frozen=True, slots=True)
class SceneDecoding:
    """How one scene's windows become decoded values on a target grid (see :func:`read_scene`).

    Attributes
    ----------
    image
        The scene's bands.
    scale, offset, nodata
        ``value = raw * scale + offset``; raw ``nodata`` (unwarped images) is invalid.
    mask, clear_values
        The scene's mask on the same target grid (warped with ``nearest``) and the values
        meaning "clear"; ``None`` without a mask.
    transformer
        Target CRS to the image's, for the footprint of a warped image in another CRS.
    """

    image: RasterWindows
    scale: float
    offset: float
    nodata: float | None
    mask: RasterWindows | None
    clear_values: np.ndarray
    transformer: Transformer | None

    def values(self, window: Window) -> np.ndarray:
        """(band, rows, cols) float32 decoded values of ``window``, NaN where not valid (a band
        at nodata or non-finite, outside the footprint, or masked)."""
        raw = self.image.read(window)
        decoded = raw.astype(np.float64)
        if self.nodata is not None and not self.image.warped:
            decoded[_is_nodata(raw, self.nodata)] = np.nan
        values = (decoded * self.scale + self.offset).astype(np.float32)
        valid = np.isfinite(values).all(axis=0)
        if self.image.warped:
            valid &= self.image.inside(window, self.transformer)
        if self.mask is not None:
            valid &= np.isin(self.mask.read(window)[0], self.clear_values)
        values[:, ~valid] = np.nan
        return values

    def block(self, *, block_info: dict[Any, Any]) -> np.ndarray:
        """:meth:`values` of the dask block ``block_info`` describes."""
        _, rows, cols = block_info[None]["array-location"]
        return self.values(Window.from_slices(rows, cols))


def _is_nodata(raw: Any, nodata: float) -> Any:
    """Where raw pixels (NumPy or dask) equal ``nodata`` in their own data type."""
    return raw == np.asarray(nodata).astype(raw.dtype)


def _scan_windows(area: PixelWindow, block: tuple[int, int]) -> list[Window]:
    """``area`` cut into windows of about :data:`SCAN_WINDOW` pixels aligned to the file's blocks,
    nearest the centre first."""
    steps = [b * (SCAN_WINDOW // b) if b <= SCAN_WINDOW else SCAN_WINDOW for b in block]
    rows = range(area.row0 - area.row0 % steps[0], area.row1, steps[0])
    cols = range(area.col0 - area.col0 % steps[1], area.col1, steps[1])
    windows = [
        Window.from_slices(
            (max(r, area.row0), min(r + steps[0], area.row1)),
            (max(c, area.col0), min(c + steps[1], area.col1)),
        )
        for r in rows
        for c in cols
    ]
    centre_row, centre_col = (area.row0 + area.row1) / 2, (area.col0 + area.col1) / 2
    return sorted(
        windows,
        key=lambda w: (
            (w.row_off + w.height / 2 - centre_row) ** 2
            + (w.col_off + w.width / 2 - centre_col) ** 2
        ),
    )


def sample_values(
    scene: Scene, info: RasterInfo, area: PixelWindow, enough: int = SAMPLE_PIXELS
) -> np.ndarray:
    """Decoded values (``raw * scale + offset``) of pixels of ``area`` with data in every band.

    A pixel has data where no band read is at the nodata value or non-finite (the scene's mask
    is not consulted: a fully clouded scene is a valid observation). The file is read one
    window of about :data:`SCAN_WINDOW` pixels a side at a time, from the centre of ``area``
    outwards, until the sample holds ``enough`` pixels: a scene with data near its centre costs
    one window; only a scene (nearly) without data is read entirely, still one window at a time.

    Parameters
    ----------
    scene, info
        The scene and its :func:`probe_raster`.
    area
        Pixels of the scene's own grid to sample (where it covers the fine grid).
    enough
        Number of pixels with data after which reading stops.

    Returns
    -------
    numpy.ndarray
        (band, n) float64; ``n`` is 0 when ``area`` holds no pixel with data.

    Raises
    ------
    InputError
        When a window cannot be decoded (a corrupt block).
    """
    nodata = scene.nodata if scene.nodata is not None else info.nodata
    found: list[np.ndarray] = []
    count = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(_gdal_path(scene.path)) as src:
                for window in _scan_windows(area, src.block_shapes[0]):
                    raw = src.read(list(scene.bands), window=window)
                    present = np.isfinite(raw)
                    if nodata is not None:
                        present &= ~_is_nodata(raw, nodata)
                    found.append(raw[:, present.all(axis=0)])
                    count += found[-1].shape[1]
                    if count >= enough:
                        break
    except RasterioError as exc:
        raise InputError(scene.path, f"corrupt: its pixels cannot be decoded ({exc})") from exc
    raw_values = np.concatenate(found, axis=1) if found else np.empty((len(scene.bands), 0))
    return raw_values.astype(np.float64) * scene.scale + scene.offset


def has_data(scene: Scene, info: RasterInfo, area: PixelWindow) -> bool:
    """Whether some pixel of ``area`` has data in every band read (see :func:`sample_values`)."""
    return sample_values(scene, info, area, enough=1).shape[1] > 0


def read_scene(
    scene: Scene,
    info: RasterInfo,
    target: Grid,
    *,
    chunk: int = 512,
    resampling: str = "average",
    mask_info: RasterInfo | None = None,
) -> tuple[da.Array, da.Array]:
    """Lazy decoded values and validity of one scene on a target grid.

    Parameters
    ----------
    scene
        The scene to read.
    info
        :func:`probe_raster` of ``scene.path``.
    target
        Grid to deliver the arrays on (the scene's own grid, the fine grid or the native coarse
        grid).
    chunk
        Spatial chunk size.
    resampling
        GDAL resampling method when the scene must be warped onto ``target``.
    mask_info
        :func:`probe_raster` of ``scene.mask_path`` (required when the scene has a mask).

    Returns
    -------
    values, valid
        ``values``: (band, y, x) float32, ``raw * scale + offset``, NaN where not ``valid``;
        ``valid``: (y, x) bool.
    """
    if scene.mask_path is not None and mask_info is None:
        raise ValueError("read_scene: mask_info is required for a scene with a mask")
    nodata = scene.nodata if scene.nodata is not None else info.nodata
    image = RasterWindows(scene.path, scene.bands, info.grid, target, resampling, nodata)
    mask = (
        RasterWindows(scene.mask_path, (1,), mask_info.grid, target, "nearest", None)
        if scene.mask_path is not None and mask_info is not None
        else None
    )
    transformer = (
        None
        if not image.warped or info.grid.same_crs(target)
        else Transformer.from_crs(target.crs, info.grid.crs, always_xy=True)
    )
    decoding = SceneDecoding(
        image,
        scene.scale,
        scene.offset,
        nodata,
        mask,
        np.asarray(scene.mask_valid_values),
        transformer,
    )
    cy, cx = _chunks(target.shape, chunk)
    values = da.map_blocks(
        decoding.block,
        chunks=((len(scene.bands),), *normalize_chunks((cy, cx), target.shape)),
        dtype=np.float32,
        meta=np.array((), dtype=np.float32),
    )
    valid = values.map_blocks(_all_finite, drop_axis=0, dtype=bool, meta=np.array((), dtype=bool))
    return values, valid


def _all_finite(values: np.ndarray) -> np.ndarray:
    """(y, x) bool: pixels whose values are finite in every band."""
    return np.isfinite(values).all(axis=0)


def repeat_to_grid(
    values: da.Array, valid: da.Array, ratio: int, shape: tuple[int, int], chunk: int
) -> tuple[da.Array, da.Array]:
    """Nested native coarse layer onto the fine grid: each fine pixel takes its coarse pixel.

    Parameters
    ----------
    values, valid
        (band, y_coarse, x_coarse) values and (y_coarse, x_coarse) validity on a native grid
        whose origin is the fine grid's and whose pixels are ``ratio`` fine pixels wide.
    ratio
        Integer coarse/fine pixel ratio.
    shape
        Fine grid (height, width); the repeated arrays are cropped to it.
    chunk
        Spatial chunk size of the result.

    Returns
    -------
    values, valid
        (band, y, x) and (y, x) lazy arrays on the fine grid.
    """
    height, width = shape
    cy, cx = _chunks(shape, chunk)
    if cy % ratio == 0 and cx % ratio == 0:  # one task per fine chunk: its native block, repeated
        values = values.rechunk((-1, cy // ratio, cx // ratio))
        valid = valid.rechunk((cy // ratio, cx // ratio))
        big = da.map_blocks(_repeat_yx, values, ratio, chunks=_scaled(values.chunks, ratio))
        mask = da.map_blocks(_repeat_yx, valid, ratio, chunks=_scaled(valid.chunks, ratio))
    else:
        big = da.repeat(da.repeat(values, ratio, axis=1), ratio, axis=2)
        mask = da.repeat(da.repeat(valid, ratio, axis=0), ratio, axis=1)
    return big[:, :height, :width].rechunk((-1, cy, cx)), mask[:height, :width].rechunk((cy, cx))


def _repeat_yx(block: np.ndarray, ratio: int) -> np.ndarray:
    """Each pixel of the last two axes of ``block`` repeated ``ratio`` x ``ratio`` times."""
    return block.repeat(ratio, axis=-2).repeat(ratio, axis=-1)


def _scaled(chunks: tuple[tuple[int, ...], ...], ratio: int) -> tuple[tuple[int, ...], ...]:
    """Dask chunks with the last two axes' sizes multiplied by ``ratio``."""
    return (*chunks[:-2], *(tuple(c * ratio for c in axis) for axis in chunks[-2:]))
