"""Reading a recording's typed text as a reviewer allowed to ``unmask`` does: a reason first, then the grant."""

from __future__ import annotations

from typing import Any

import aiohttp


async def unmasked_typed(http: aiohttp.ClientSession, url: str, recording_id: str,
                         reason: str = "review for the test") -> dict[str, Any]:
    """``GET /api/v1/recordings/{id}/typed`` after ``POST .../unmask`` with ``reason`` (the session may unmask)."""
    async with http.get(f"{url}/api/v1/session") as response:
        csrf = {"X-CSRF-Token": (await response.json())["csrf_token"]}
    async with http.post(f"{url}/api/v1/recordings/{recording_id}/unmask", json={"reason": reason},
                         headers=csrf) as response:
        assert response.status == 200, await response.text()
        grant = await response.json()
    async with http.get(f"{url}{grant['typed']}") as response:
        assert response.status == 200, await response.text()
        typed: dict[str, Any] = await response.json()
    assert typed["withheld"] is False
    return typed
