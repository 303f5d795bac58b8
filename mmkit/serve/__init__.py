"""The search app: ``mmkit serve`` (a JSON API and a web page over an index folder) and the
notebooks' search widget, one code path (:class:`~mmkit.serve.service.SearchService`)."""
from __future__ import annotations
