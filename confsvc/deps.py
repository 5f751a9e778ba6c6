"""Request dependencies shared by every domain's routes: settings, paging (and, from ``db``, ids and sessions).

``SettingsDep`` is the app's :class:`~confsvc.config.Settings` (``app.state.settings``, set by
``create_app``), so tests override settings by building the app with them, never through the
environment. ``PagingDep`` parses ``limit``/``offset``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from confsvc.config import Settings
from confsvc.db import MAX_ID, PathId, SessionDep
from confsvc.errors import Invalid

__all__ = ["Paging", "PagingDep", "PathId", "SessionDep", "SettingsDep", "app_settings"]


async def app_settings(request: Request) -> Settings:
    """The running app's settings (``async``: no I/O, so no thread-pool hop)."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


class Paging:
    """``limit`` (1…settings.page_size_max, default 50) and ``offset`` (≥ 0) query parameters.

    Raises:
        Invalid: ``limit_too_large`` (422) when ``limit`` exceeds ``settings.page_size_max``.
    """

    def __init__(self, request: Request, limit: Annotated[int, Query(ge=1)] = 50,
                 offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> None:
        maximum = request.app.state.settings.page_size_max
        if limit > maximum:
            raise Invalid(f"limit must be at most {maximum}", code="limit_too_large")
        self.limit, self.offset = limit, offset


PagingDep = Annotated[Paging, Depends()]
