"""``/docs`` and ``/redoc`` work on an intranet without Internet access (issue 13: Swagger UI loaded
from a CDN showed a blank page): every script, stylesheet and icon they reference is served here."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_reference_only_local_assets_that_answer_200(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    urls = re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""url\s*:\s*['"]([^'"]+)['"]""", html)
    assert urls, html
    assert not re.search(r"https?://|//cdn|jsdelivr|unpkg|googleapis", html), html
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        assert client.get(url).status_code == 200, url
    assert "/openapi.json" in urls
