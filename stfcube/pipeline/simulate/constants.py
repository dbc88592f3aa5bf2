"""Fixed properties of every synthetic site: bands, grid, storage scale and collection ids."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stfcube.pipeline.defaults import SIMULATED_BANDS

#: Reflectance and noise arrays of the generator.
FloatArray = npt.NDArray[np.float32]

#: The six reflective bands a site can carry, in file order.
BAND_NAMES = SIMULATED_BANDS

#: Fine pixel size (metres), projected CRS and grid origin (upper-left corner) of every site.
FINE_PIXEL_SIZE = 30.0
EPSG = 32633
ORIGIN_X = 400_000.0
ORIGIN_Y = 5_400_000.0

#: Stored reflectance = round(reflectance / SCALE), int16, with NODATA for missing pixels.
SCALE = 1e-4
NODATA = -9999
#: Stored values are clipped to this range (reflectance -0.01 to 1.6).
STORED_MIN = -100
STORED_MAX = 16_000

#: STAC collection ids of the fine sensor, the coarse sensor and the fine truth.
FINE_COLLECTION = "sim-fine"
COARSE_COLLECTION = "sim-coarse"
TRUTH_COLLECTION = "sim-truth"
