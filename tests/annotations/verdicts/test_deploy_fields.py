"""`verify_after` on a deploy's start and `verdict` on the deploy, through the real API."""

from __future__ import annotations

import pytest

from annotations.app import ControlPlane
from tests.annotations.control.test_api import AiohttpClient, Client, make_app, start


@pytest.fixture
async def client(control: ControlPlane, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(make_app(control))


async def test_a_deploy_starts_pending_with_its_verify_after(client, tokens):
    deploy = await start(client, tokens, verify_after="4s")
    assert deploy["verify_after_ns"] == 4 * 10**9
    assert deploy["verdict"] == {"status": "pending", "due_ns": None}
    default = await start(client, tokens)
    assert default["verify_after_ns"] is None
    response = await client.get(f"/api/v1/deploys/{deploy['id']}", headers=tokens["viewer"])
    assert (await response.json())["verdict"]["status"] == "pending"


@pytest.mark.parametrize(
    ("given", "problem"),
    [("soon", "is not a duration"), ("0s", "must be longer than 0"), (4, "valid string")],
)
async def test_a_bad_verify_after_is_refused_naming_it(client, tokens, given, problem):
    response = await client.post(
        "/api/v1/deploys",
        json={"service": "web", "environment": "prod", "version": "1", "verify_after": given},
        headers=tokens["operator"],
    )
    assert response.status == 400
    text = await response.text()
    assert "verify_after" in text
    assert problem in text
