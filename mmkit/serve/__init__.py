"""The search app: ``mmkit serve`` (a JSON API and a web page over an index folder) and the
notebooks' search widget, one code path (:class:`~mmkit.serve.service.SearchService`).

- :class:`SearchService`: an index folder opened once with its method loaded once; search
  (texts, uploaded images and sounds, weights), similar images, thumbnails, original files;
- :func:`create_app`: the ASGI app (Starlette) over a service; :func:`serve`: run it with
  uvicorn (127.0.0.1 by default).
"""
from __future__ import annotations

from mmkit.serve.app import create_app, serve
from mmkit.serve.service import (LIMITS, MAX_K, Forbidden, NotFound, SearchService, TooLarge,
                                 Unsupported)

__all__ = ["SearchService", "create_app", "serve", "NotFound", "Forbidden", "TooLarge",
           "Unsupported", "LIMITS", "MAX_K"]
