"""Who gets in: the app built in-process over the real store and control DB, asked over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from annotations.control.db import ControlDB
from annotations.control.tokens import create_token, revoke_token
from dashboards.app import create_app
from dashboards.auth import COOKIE, load_key, sign_in_link
from shipboard.server import dashboards_config
from shipboard.settings import Settings
from storage.embedded import EmbeddedStore


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Settings, EmbeddedStore, ControlDB]]:
    settings = Settings(data_dir=tmp_path)
    with EmbeddedStore(tmp_path / "metrics", settings.tiers()) as store:
        control = ControlDB.open("", tmp_path)
        yield settings, store, control
        control.close()


def client(settings: Settings, store: EmbeddedStore, control: ControlDB) -> FlaskClient:
    app = create_app(dashboards_config(settings), store=store, control=control)
    http: FlaskClient = app.server.test_client()
    return http


def test_a_token_signs_in_and_its_revocation_signs_out(
    parts: tuple[Settings, EmbeddedStore, ControlDB],
) -> None:
    settings, store, control = parts
    http = client(settings, store, control)
    assert http.get("/_dash-layout").status_code == 401
    assert http.get("/", headers={"Accept": "text/html"}).status_code == 401
    info, token = create_token(control, "wall", "viewer")
    assert (
        http.get("/_dash-layout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    signed_in = http.post("/signin", data={"token": token, "next": "/d/hosts?from=-6h"})
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/d/hosts?from=-6h"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert token not in cookie
    assert http.get("/_dash-layout").status_code == 200
    revoke_token(control, info.id)
    assert (
        http.get("/_dash-layout", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    assert http.post("/signin", data={"token": token}).status_code == 401


def test_sign_in_never_redirects_off_the_site_and_forged_cookies_fail(
    parts: tuple[Settings, EmbeddedStore, ControlDB],
) -> None:
    settings, store, control = parts
    http = client(settings, store, control)
    _, token = create_token(control, "alice", "operator")
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = http.post("/signin", data={"token": token, "next": target})
        assert response.headers["Location"] == "/"
    http.set_cookie(COOKIE, "eyJ0IjoxfQ.forged.signature")
    assert http.get("/_dash-layout").status_code == 401


def test_a_sign_in_link_works_for_a_day_with_this_data_dir_only(
    parts: tuple[Settings, EmbeddedStore, ControlDB], tmp_path: Path
) -> None:
    settings, store, control = parts
    http = client(settings, store, control)
    good = sign_in_link("http://127.0.0.1:8050", load_key(settings.data_dir))
    assert http.get(good.removeprefix("http://127.0.0.1:8050")).status_code == 303
    assert http.get("/_dash-layout").status_code == 200
    other = sign_in_link("http://127.0.0.1:8050", load_key(tmp_path / "elsewhere"))
    fresh = client(settings, store, control)
    assert fresh.get(other.removeprefix("http://127.0.0.1:8050")).status_code == 401
    assert fresh.get("/_dash-layout").status_code == 401


def test_anonymous_read_lets_everyone_read(
    parts: tuple[Settings, EmbeddedStore, ControlDB],
) -> None:
    settings, store, control = parts
    open_settings = Settings(data_dir=settings.data_dir, anonymous_read=True)
    http = client(open_settings, store, control)
    assert http.get("/_dash-layout").status_code == 200
    page = http.get("/d/hosts")
    assert page.status_code == 200
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_viewer_link_for_a_wall_screen_signs_in_and_lands_on_the_wall(
    parts: tuple[Settings, EmbeddedStore, ControlDB],
) -> None:
    settings, store, control = parts
    http = client(settings, store, control)
    _, token = create_token(control, "lobby screen", "viewer")
    wall = "/d/hosts?kiosk=1&playlist=hosts,services"
    response = http.get("/signin", query_string={"token": token, "next": wall})
    assert response.status_code == 303
    assert response.headers["Location"] == wall
    assert http.get("/_dash-layout").status_code == 200
