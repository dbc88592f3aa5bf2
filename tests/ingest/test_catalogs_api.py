"""The STAC API search path: pystac-client against a tiny STAC API on loopback.

The server answers ``/`` (landing page with the item-search conformance classes),
``/collections``, ``/collections/{id}`` and ``/search`` (GET and POST; collections, bbox and
datetime filters, one page) from the real item JSON of ``shared/data/stac_real``, with asset
hrefs pointing at rasters written in ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.fixtures.stac.rasters import load_items, localize, window_bbox
from stfcube.pipeline.cli import app
from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.ingest.catalog.find import find_items, parse_bbox, parse_dates
from stfcube.pipeline.ingest.catalog.ingest import CatalogQuery, ingest_catalog
from stfcube.pipeline.store.cube import open_cube

pytestmark = pytest.mark.shared

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
]


def _instant(text: str | None) -> dt.datetime | None:
    if text in (None, "", ".."):
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _selected(item: dict, params: dict) -> bool:
    if params.get("collections") and item["collection"] not in params["collections"]:
        return False
    if params.get("bbox"):
        w, s, e, n = params["bbox"]
        iw, is_, ie, in_ = item["bbox"]
        if ie < w or iw > e or in_ < s or is_ > n:
            return False
    if params.get("datetime"):
        first, _, last = params["datetime"].partition("/")
        props = item["properties"]
        begins = _instant(props.get("start_datetime") or props.get("datetime"))
        ends = _instant(props.get("end_datetime") or props.get("datetime"))
        start, end = _instant(first), _instant(last or first)
        if (start and ends < start) or (end and begins > end):
            return False
    return True


class _Api(BaseHTTPRequestHandler):
    items: ClassVar[list[dict]] = []
    searches: ClassVar[list[dict]] = []

    def log_message(self, *args) -> None:
        """Quiet."""

    def _send(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _root(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"

    def _landing(self) -> dict:
        root = self._root()
        return {
            "type": "Catalog",
            "id": "loopback",
            "stac_version": "1.0.0",
            "description": "test API",
            "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": root + "/", "type": "application/json"},
                {"rel": "root", "href": root + "/", "type": "application/json"},
                {
                    "rel": "search",
                    "href": root + "/search",
                    "type": "application/geo+json",
                    "method": "GET",
                },
                {
                    "rel": "search",
                    "href": root + "/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
                {"rel": "data", "href": root + "/collections", "type": "application/json"},
            ],
        }

    def _search(self, params: dict) -> None:
        type(self).searches.append(params)
        features = [i for i in self.items if _selected(i, params)]
        self._send(200, {"type": "FeatureCollection", "features": features, "links": []})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path in ("", "/"):
            self._send(200, self._landing())
        elif url.path == "/search":
            query = parse_qs(url.query)
            params = {
                "collections": query.get("collections", [""])[0].split(",") if query else [],
                "bbox": [float(v) for v in query["bbox"][0].split(",")]
                if "bbox" in query
                else None,
                "datetime": query.get("datetime", [None])[0],
            }
            self._search(params)
        elif url.path == "/collections":
            ids = sorted({i["collection"] for i in self.items})
            self._send(200, {"collections": [{"id": c} for c in ids], "links": []})
        else:
            self._send(404, {"code": "NotFound", "description": url.path})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        params = json.loads(self.rfile.read(length) or b"{}")
        if urlparse(self.path).path == "/search":
            self._search(params)
        else:
            self._send(404, {"code": "NotFound", "description": self.path})


@pytest.fixture
def stac_api(shared_dir, tmp_path) -> Iterator[tuple[str, list[dict], type]]:
    """A loopback STAC API serving the PC Landsat items (one localized) and a MODIS item."""
    landsat = load_items(shared_dir, "landsat-c2-l2/pc_landsat-c2-l2_4items.json")
    rng = np.random.default_rng(1)
    arrays = {
        k: rng.integers(7273, 43636, (48, 48)).astype(np.uint16)
        for k in ("blue", "green", "red", "nir08", "swir16", "swir22")
    }
    arrays["qa_pixel"] = np.full((48, 48), 21824, np.uint16)
    served = [
        localize(landsat[0], arrays, tmp_path / "rasters"),
        *landsat[1:],
        *load_items(shared_dir, "modis-09A1-061/stactools_MOD09A1.A2022033.h19v10.061.json"),
    ]
    handler = type("Handler", (_Api,), {"items": served, "searches": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served, handler
    finally:
        server.shutdown()
        server.server_close()


def test_search_filters_by_collection_bbox_and_dates(stac_api):
    url, served, handler = stac_api
    found = find_items(
        url,
        collections=["landsat-c2-l2"],
        bbox=parse_bbox(",".join(map(str, served[0]["bbox"]))),
        dates=parse_dates("2024-04-17/2024-04-17"),
    )
    assert [i.id for i in found] == [served[0]["id"]]
    assert handler.searches[-1]["collections"] == ["landsat-c2-l2"]
    assert not find_items(
        url, collections=["landsat-c2-l2"], bbox=None, dates=parse_dates("2023-01-01/2023-12-31")
    )
    modis = find_items(
        url, collections=["modis-09A1-061"], bbox=None, dates=parse_dates("2022-02-05/2022-02-05")
    )
    assert [i.id for i in modis] == ["MOD09A1.A2022033.h19v10.061"]


def test_api_items_ingest_into_a_cube(stac_api, tmp_path):
    url, served, _ = stac_api
    bbox = window_bbox(served[0], "red", (4, 44), (4, 44))
    query = CatalogQuery(
        fine=("landsat-c2-l2",), coarse=(), bbox=bbox, dates=parse_dates("2024-04-01/2024-04-30")
    )
    report = ingest_catalog(url, tmp_path / "cube.zarr", query, chunk=32)
    ds = open_cube(tmp_path / "cube.zarr")
    assert report.written == ("fine 2024-04-18",)
    assert ds.attrs["fine_items"] == {"2024-04-18": [served[0]["id"]]}
    assert bool(ds.fine_valid.all())


def test_cli_ingests_from_the_api(stac_api, tmp_path):
    url, served, _ = stac_api
    bbox = ",".join(f"{v:.6f}" for v in window_bbox(served[0], "red", (4, 44), (4, 44)))
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            url,
            str(tmp_path / "cli.zarr"),
            "--fine",
            "landsat-c2-l2",
            "--bbox",
            bbox,
            "--dates",
            "2024-04-17/2024-04-18",
            "--bands",
            "red,nir",
            "--chunk",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    ds = open_cube(tmp_path / "cli.zarr")
    assert list(ds.band.values) == ["red", "nir"]
    assert ds.attrs["fine_sensor"] == "landsat-c2-l2"


def test_unreachable_api_and_bad_query_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="STAC API search failed"):
        find_items("http://127.0.0.1:9/", collections=["landsat-c2-l2"], bbox=None, dates=None)
    with pytest.raises(ConfigError, match="bbox"):
        parse_bbox("10,20,5,30")
    with pytest.raises(ConfigError, match="ends before"):
        parse_dates("2024-05-02/2024-05-01")
