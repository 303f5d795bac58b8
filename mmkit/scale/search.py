"""Searching an index folder made by :func:`mmkit.scale.build.build_folder_index`.

- :class:`FolderIndex`: open a folder (its ``manifest.json`` and every index file, each
  checked against the SHA-256 the manifest records) and search it with query embeddings
  (:meth:`FolderIndex.search_vectors`);
- :func:`load_method`: the index's own method, ready (a fitted method stored with the index
  is loaded, never fitted again), checked against the model the index was built with;
- :class:`Term`, :func:`parse_term`: one part of a composed query (a text, an image file or
  a sound file, with a weight; a negative weight pushes results away from it);
- :func:`search_index` / :func:`search_folder`: a composed query embedded by the index's
  method, scored, cut at a threshold, paged; each hit can say why it matched.
  ``mmkit search`` runs it.

How a composed query scores an image x: ``sum_i w_i s_i(x)``, where ``s_i`` is the cosine
between term i's embedding and x's embedding in the space made for term i's modality (for a
method that reads words in photos, a text term's ``s_i`` adds the words it finds:
:func:`mmkit.methods.pretrained.combine_text_scores`). In one joint space this equals the
cosine with the weighted sum of the term vectors (rclip's ``+`` and ``-``).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmkit.errors import InputError
from mmkit.index import SearchIndexError, SearchResult, load_index
from mmkit.methods import available_methods
from mmkit.scale import embed as E
from mmkit.scale.files import load_image
from mmkit.scale.shards import ShardedIndex
from mmkit.scale.store import FileEntry, folder_changes, open_store, read_npz, sha256_of
from mmkit.training import torch_threads
from mmkit.validate import integer

#: below this many indexed images a composed query scores every image exactly
SCORE_ALL_BELOW = 50_000
#: candidates per term (times k + offset, at least 200) when the collection is larger
CANDIDATES_PER_HIT = 10
#: torch threads while one query is embedded: a single sentence or photo is faster on one
#: thread than on two busy cores (MiniLM: ~10 ms vs ~500 ms per sentence measured under load;
#: warm text queries p50 57 ms vs 366 ms, benchmarks/bench_photos.py)
QUERY_THREADS = 1
#: how long (s) :meth:`FolderIndex.changes` reuses its look at the images folder
CHANGES_MAX_AGE = 10.0


class FolderIndex:
    """An index folder made by :func:`build_folder_index`, opened for search.

    Attributes: ``path``, ``manifest`` (the parsed manifest.json), ``indexes`` ({space:
    :class:`ShardedIndex`}), ``entries`` (every image file listed at build time, a
    :class:`~mmkit.scale.store.FileEntry`; an id is a position in this list).
    """

    def __init__(self, path: Path, manifest: dict[str, Any],
                 indexes: dict[str, ShardedIndex]) -> None:
        self.path, self.manifest, self.indexes = path, manifest, indexes
        self.entries = [FileEntry.from_row(r) for r in manifest.get("files", [])]
        self._stored: dict[str, tuple[np.ndarray, dict[int, int]]] = {}
        self._extras: dict[str, np.ndarray] | None = None
        self._changes: tuple[float, dict[str, int]] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> FolderIndex:
        """Read and check ``path/manifest.json`` and every shard it names (one-line errors:
        not a folder, an unfinished build, a foreign or older folder, a damaged file)."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"--index {path}: is not a folder" if path.exists()
                             else f"--index {path}: no such folder")
        if not (path / E.MANIFEST).is_file():
            if (path / E.PLAN).is_file():
                raise InputError(f"--index {path}: an unfinished build (no manifest.json); "
                                 "run the same 'mmkit index build' again to finish it")
            raise InputError(f"--index {path}: not an mmkit index folder (no manifest.json)")
        m = E.read_json(path / E.MANIFEST, "manifest")
        checksums = m.get("checksums", {})
        indexes = {}
        for space, info in m.get("spaces", {}).items():
            shards = []
            for rel in info["shards"]:
                if not (path / rel).is_file():
                    raise InputError(f"--index {path}: {rel} is missing (run 'mmkit index "
                                     f"update {path}' to rebuild it)")
                if rel not in checksums or sha256_of(path / rel) != checksums[rel]:
                    raise InputError(f"--index {path}: {rel} is damaged (its SHA-256 differs "
                                     f"from the manifest's); run 'mmkit index update {path}' "
                                     "to rebuild it")
                try:
                    shard = load_index(path / rel)
                except SearchIndexError as e:
                    raise InputError(f"--index {path}: {e}") from None
                if shard.dim != info["dim"]:
                    raise InputError(f"--index {path}: {rel} has dimension {shard.dim}, the "
                                     f"manifest says {info['dim']} (a folder mixed from "
                                     "different builds?)")
                shards.append(shard)
            sharded = ShardedIndex(shards)
            if len(sharded) != info["n"]:
                raise InputError(f"--index {path}: the {space} shards hold {len(sharded)} "
                                 f"vectors, the manifest says {info['n']}")
            if info.get("search_params"):
                sharded.set_search_params(**info["search_params"])
            indexes[space] = sharded
        if not indexes:
            raise InputError(f"--index {path}: the manifest lists no index")
        return cls(path, m, indexes)

    @property
    def spaces(self) -> list[str]:
        return list(self.indexes)

    def __len__(self) -> int:
        return int(self.manifest["n_indexed"])

    def check_method(self, name: str, fit: dict[str, Any]) -> None:
        """One-line error unless the index was made by method ``name`` fitted as ``fit``
        with the same model (the fingerprint: the checksums of the weights)."""
        m = self.manifest
        if m["method"] != name:
            raise InputError(f"--index {self.path}: made by method {m['method']!r}, not {name!r}")
        built = m["fit"].get("fingerprint")
        if built is not None and fit.get("fingerprint") is not None \
                and built != fit["fingerprint"]:
            raise InputError(f"--index {self.path}: built with another model of method "
                             f"{name!r} than the one loaded now (fingerprint "
                             f"{short_fingerprint(built)} vs "
                             f"{short_fingerprint(fit['fingerprint'])}); embeddings would not "
                             f"match: run 'mmkit index update {self.path}' to embed again")
        strip = {k: v for k, v in m["fit"].items() if k != "fingerprint"}
        if strip != {k: v for k, v in fit.items() if k != "fingerprint"}:
            raise InputError(f"--index {self.path}: method {name!r} was fitted differently for "
                             f"this index ({m['fit']}) than here ({fit}); embeddings would not "
                             "match")

    def search_vectors(self, space: str, queries: np.ndarray, k: int = 10) -> SearchResult:
        """Top-k of float32 [Q, d] query embeddings in ``space``: (scores, ids) [Q, k]."""
        index = self.indexes[space]
        q = np.asarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != index.dim:
            raise InputError(f"query embeddings have shape {q.shape}, the {space} index has "
                             f"dimension {index.dim} (another method or model?)")
        try:
            return index.search(q, min(int(k), len(index)))
        except SearchIndexError as e:
            raise InputError(str(e)) from None

    def stored_vectors(self, space: str) -> tuple[np.ndarray, dict[int, int]]:
        """The embeddings the index was built from: (float32 [n_indexed, d], {id: row}),
        read from the store (each chunk checked against the manifest's SHA-256)."""
        if space not in self._stored:
            fit = self.manifest["fit"]
            store = open_store(self.path, self.spaces, fit.get("fingerprint", ""),
                               self.manifest.get("checksums"))
            ids = [i for i, e in enumerate(self.entries) if e.sha256 in store.rows]
            missing = len(self) - len(ids)
            if missing:
                raise InputError(f"--index {self.path}: {missing} stored embeddings are "
                                 f"missing; run 'mmkit index update {self.path}'")
            for s in self.spaces:
                self._stored[s] = (store.vectors(s, [self.entries[i].sha256 for i in ids]),
                                   {i: r for r, i in enumerate(ids)})
        return self._stored[space]

    def stored_ids(self) -> list[int]:
        """The ids of the indexed files (positions in :attr:`entries`), from the index."""
        ids = next(iter(self.indexes.values())).ids
        return [int(i) for i in ids.tolist()]

    def extras(self) -> dict[str, np.ndarray]:
        """What the method stored to explain hits (``ids`` [n] and ``x_*`` [n, ...], ``ocr``
        str [n]); {} when it stored nothing."""
        if self._extras is None:
            rel = f"index/{self.manifest['generation']}/extras.npz"
            sha = self.manifest.get("checksums", {}).get(rel)
            self._extras = read_npz(self.path / rel, sha, "extras file") if sha else {}
        return self._extras

    def changes(self, max_age: float = CHANGES_MAX_AGE) -> dict[str, int]:
        """What changed in the images folder since the build (by file size and time; one
        ``stat`` per file). A result younger than ``max_age`` seconds is reused, so a server
        answering many queries looks at the folder at most that often."""
        now = time.monotonic()
        if self._changes is None or now - self._changes[0] > max_age:
            self._changes = (now, folder_changes(self.manifest["root"], self.entries))
        return dict(self._changes[1])

    def paths(self, ids: Any) -> list[str]:
        """File paths (the images folder joined with the relative path) of ids [n] (-1: skipped)."""
        root = Path(self.manifest["root"])
        return [str(root / self.entries[int(i)].path) for i in np.asarray(ids) if i >= 0]

    def relative_paths(self, ids: Any) -> list[str]:
        return [self.entries[int(i)].path for i in np.asarray(ids) if i >= 0]


def short_fingerprint(fingerprint: str) -> str:
    """A fingerprint shortened for a message or a page: each SHA-256 cut to 12 digits."""
    return re.sub(r"([0-9a-f]{12})[0-9a-f]{52}", r"\1", str(fingerprint))


def load_method(index: FolderIndex, *, model: str | os.PathLike | None = None,
                quiet: bool = False) -> tuple[Any, dict[str, Any]]:
    """The index's own method, ready, and its fit description: a pretrained method loads its
    weights (``model`` overrides the CLIP folder recorded at build time); a fitted method
    stored with the index (``method.npz``) is loaded from it, never fitted again. One-line
    error when this mmkit lacks the method or loads another model than the build did."""
    m = index.manifest
    name = m["method"]
    if name not in available_methods():
        raise InputError(f"--index {index.path}: made by method {name!r}, which this mmkit "
                         f"does not have (available: {', '.join(available_methods())})")
    options = dict(m.get("options", {}))
    if model is not None:
        options["model"] = str(Path(model).resolve())
    fit = m["fit"]
    state = m.get("checksums", {}).get(E.METHOD_STATE)
    if not fit.get("pretrained", True) and state:
        obj = E.make_method(name, options)
        obj.load_state_arrays(read_npz(index.path / E.METHOD_STATE, state, "fitted method"))
        now = {**fit, "fingerprint": obj.fingerprint}
    elif not fit.get("pretrained", True):
        if fit.get("world") != E.FIT_WORLD:
            raise InputError(f"--index {index.path}: method {name!r} was fitted on a custom "
                             f"world ({fit}); search it from Python with that method")
        obj, now = E.prepare_method(name, options=options, quiet=quiet)
    else:
        obj, now = E.prepare_method(name, options=options, quiet=quiet)
    index.check_method(name, now)
    return obj, now


def load_query_audio(path: str | os.PathLike, sr: int) -> np.ndarray:
    """float32 [T] mono waveform at ``sr`` Hz from a sound file. Documented conversions:
    several channels -> their mean (mono downmix); another rate -> resampled (librosa)."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise InputError(f"--audio {path}: not a sound file soundfile can read "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if data.shape[0] == 0:
        raise InputError(f"--audio {path}: the sound file is empty")
    clip = data.mean(axis=1)
    if rate != sr:
        import librosa

        clip = librosa.resample(clip, orig_sr=rate, target_sr=sr).astype(np.float32)
    if not np.isfinite(clip).all():
        raise InputError(f"--audio {path}: contains NaN or infinite samples")
    return clip


@dataclass(frozen=True)
class Term:
    """One part of a composed query: ``modality`` "text" (``value`` the text), "image" or
    "audio" (``value`` a file path), and its ``weight`` (negative: results move away)."""

    modality: str
    value: str
    weight: float = 1.0

    def label(self) -> str:
        sign = "" if self.weight == 1 else f"{self.weight:g}:"
        return f"{self.modality} {sign}{self.value}"


_WEIGHTED = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*:(.*)$", re.DOTALL)


def parse_term(modality: str, text: str, weight: float | None = None) -> Term:
    """A :class:`Term` from a command-line value: ``"a cat"`` (weight 1), ``"0.5:snow"``
    (weight 0.5), ``"-1:a dog"`` (away from dogs); ``weight`` overrides (``--not``: -1)."""
    if modality not in E.QUERY_MODALITIES:
        raise InputError(f"unknown query modality {modality!r}; use text, image or audio")
    text = str(text)
    w = 1.0
    m = _WEIGHTED.match(text)
    if m and (modality == "text" or not Path(text).exists()):
        w, text = float(m.group(1)), m.group(2).strip()
    if weight is not None:
        w = float(weight) * (abs(w) if m else 1.0)
    if not np.isfinite(w) or w == 0:
        raise InputError(f"--{modality} {text!r}: the weight must be a non-zero number")
    if not text.strip():
        raise InputError(f"--{modality}: the query {'text' if modality == 'text' else 'file'} "
                         "is empty")
    return Term(modality, text, w)


def check_terms(terms: list[Term]) -> None:
    """Check the query before any model work (one-line InputError): at least one term with
    a positive weight; readable image and sound files."""
    if not terms:
        raise InputError("give a query: --text, --image or --audio (several may be combined)")
    if not any(t.weight > 0 for t in terms):
        raise InputError("every query term has a negative weight: give at least one thing "
                         "to look for (--text, --image or --audio)")
    for t in terms:
        if t.modality == "text" and not t.value.strip():
            raise InputError("--text: the query text is empty")
        if t.modality == "image":
            try:
                load_image(t.value, 8)
            except InputError as e:
                raise InputError(f"--image {e}") from None
        if t.modality == "audio":
            load_query_audio(t.value, 16000)


def embed_term(method: Any, term: Term, spaces: list[str]) -> tuple[str, np.ndarray,
                                                                   dict[str, np.ndarray]]:
    """(space, float32 [d] embedding, extras of an image query such as its concepts) of one
    query term, embedded by ``method`` in the space made for its modality."""
    space = E.space_for(term.modality, spaces)
    extras: dict[str, np.ndarray] = {}
    if term.modality == "text":
        q = method.embed_texts([term.value])
    elif term.modality == "image":
        pixels = load_image(term.value, int(getattr(method, "input_size", 64)))[None]
        found = method.embed_for_index(pixels, [space])
        q = found[space]
        extras = {k: v[0] for k, v in found.items() if k.startswith("x_")}
    else:
        sr = int(getattr(method, "sample_rate", 16000))
        q = method.embed_audio(load_query_audio(term.value, sr)[None], sr)
    return space, np.asarray(q, np.float32).reshape(-1), extras


def embed_query(method: Any, *, text: str | None = None, image: str | None = None,
                audio: str | None = None) -> tuple[str, np.ndarray]:
    """(modality, float32 [1, d]) for exactly one of a text, an image file, a sound file:
    :func:`embed_term` of that one term, in the space the method makes for its modality."""
    check_query(text=text, image=image, audio=audio)
    modality = "text" if text is not None else "image" if image is not None else "audio"
    term = Term(modality, str(text if text is not None else image or audio))
    _, vector, _ = embed_term(method, term, E.spaces_of(method))
    return modality, vector[None]


def check_query(*, text: str | None = None, image: str | None = None,
                audio: str | None = None) -> None:
    """Check a one-term query before any model work (one-line InputError)."""
    given = [v for v in (text, image, audio) if v is not None]
    if len(given) != 1:
        raise InputError("give exactly one query: --text, --image or --audio")
    modality = "text" if text is not None else "image" if image is not None else "audio"
    check_terms([Term(modality, str(given[0]))])


def _ocr_words(extras: dict[str, np.ndarray]) -> dict[int, list[str]]:
    if "ocr" not in extras:
        return {}
    return {int(i): str(w).split() for i, w in zip(extras["ids"], extras["ocr"]) if str(w)}


def search_index(index: FolderIndex, method: Any, terms: list[Term], *, k: int = 10,
                 offset: int = 0, threshold: float | None = None, why: bool = False,
                 check_files: bool = True, threads: int | None = QUERY_THREADS
                 ) -> dict[str, Any]:
    """Score the images of ``index`` for a composed query (see the module docstring).

    Returns ``{"query": [{"modality", "value", "weight"}], "notes": [...], "results":
    [{"id", "path", "score", "why"?}], "total": hits above the threshold among the scored,
    "offset", "k", "warnings": [...]}``; results are ranks ``offset .. offset + k - 1`` (score
    descending, then path). ``notes``: one line per text term the method cannot represent
    well (:meth:`~mmkit.methods.base.RetrievalMethod.query_note`). ``check_files``: drop
    hits whose file is gone and warn when the folder changed since the build. ``threads``:
    torch threads while the query is embedded (:data:`QUERY_THREADS`; None: leave as is).
    """
    check_terms(terms)
    k = integer(k, "-k", low=1)
    offset = integer(offset, "--offset", low=0)
    if threshold is not None and not np.isfinite(threshold):
        raise InputError(f"--threshold must be a number, got {threshold!r}")
    with torch_threads(threads):
        notes = [n for t in terms if t.modality == "text"
                 for n in [method.query_note(t.value)] if n]
        embedded = [embed_term(method, t, index.spaces) for t in terms]
    extras = index.extras()
    ocr = _ocr_words(extras) if hasattr(method, "combine_text_scores") else {}
    want = offset + k
    n = len(index)
    ocr_hits = {t.value: {i: method.ocr_match(t.value, w) for i, w in ocr.items()}
                for t in terms if t.modality == "text" and ocr}
    simple = len(terms) == 1 and not any(f for h in ocr_hits.values()
                                         for f, _ in h.values() if f > 0)
    if simple:
        space, q, _ = embedded[0]
        res = index.search_vectors(space, q[None], min(n, want + 50))
        keep = res.ids[0] >= 0
        ids = res.ids[0][keep].numpy()
        scores = res.scores[0][keep].numpy().astype(np.float64) * terms[0].weight
    else:
        if n <= SCORE_ALL_BELOW:
            cand = np.array(sorted(index.stored_vectors(embedded[0][0])[1]), np.int64)
        else:
            pool = set()
            per = max(200, CANDIDATES_PER_HIT * want)
            for t, (space, q, _) in zip(terms, embedded):
                if t.weight > 0:
                    r = index.search_vectors(space, q[None], min(n, per))
                    pool |= {int(i) for i in r.ids[0].tolist() if i >= 0}
            for hits in ocr_hits.values():
                pool |= {i for i, (f, _) in hits.items() if f > 0}
            cand = np.array(sorted(pool), np.int64)
        scores = np.zeros(len(cand))
        for t, (space, q, _) in zip(terms, embedded):
            x, row = index.stored_vectors(space)
            s = x[[row[int(i)] for i in cand]] @ q
            if t.modality == "text" and t.value in ocr_hits:
                frac = np.array([ocr_hits[t.value].get(int(i), (0.0, []))[0] for i in cand])
                s = method.combine_text_scores(s, frac)
            scores += t.weight * s
        ids = cand
    order = np.lexsort((ids, -scores))
    ids, scores = ids[order], scores[order]
    if threshold is not None:
        keep = scores >= threshold
        ids, scores = ids[keep], scores[keep]
    warnings = []
    if check_files:
        changed = index.changes()
        if any(changed.values()):
            warnings.append(f"the folder {index.manifest['root']} changed since the index was "
                            f"built ({changed['new']} new, {changed['modified']} modified, "
                            f"{changed['deleted']} deleted files); run 'mmkit index update "
                            f"{index.path}'")
        if changed["deleted"] or changed["modified"]:
            root = Path(index.manifest["root"])
            exists = np.array([(root / index.entries[int(i)].path).is_file() for i in ids],
                              bool)
            if not exists.all():
                warnings.append(f"{int((~exists).sum())} hits left out: their files are gone")
                ids, scores = ids[exists], scores[exists]
    total = len(ids)
    page_ids, page_scores = ids[offset:want], scores[offset:want]
    results = []
    for i, sc in zip(page_ids, page_scores):
        hit: dict[str, Any] = {"id": int(i), "path": index.paths([i])[0],
                               "score": round(float(sc), 6)}
        if why:
            hit["why"] = explain_hit(method, index, int(i), terms, embedded, ocr_hits)
        results.append(hit)
    return {"query": [{"modality": t.modality, "value": t.value, "weight": t.weight}
                      for t in terms],
            "spaces": sorted({sp for sp, _, _ in embedded}), "notes": notes,
            "warnings": warnings, "total": total, "offset": int(offset), "k": int(k),
            "results": results}


def explain_hit(method: Any, index: FolderIndex, image_id: int, terms: list[Term],
                embedded: list[tuple[str, np.ndarray, dict[str, np.ndarray]]],
                ocr_hits: dict[str, dict[int, tuple[float, list[str]]]]) -> dict[str, Any]:
    """Why image ``image_id`` matched: per term, what the method says (the concepts the query
    and the image share, the words found in the image); {} when the method cannot say."""
    extras = index.extras()
    if "ids" not in extras or not hasattr(method, "explain_text"):
        return {}
    rows = np.flatnonzero(extras["ids"] == image_id)
    if len(rows) == 0:
        return {}
    r = int(rows[0])
    out: dict[str, Any] = {}
    for t, (_, _, q_extras) in zip(terms, embedded):
        if t.modality == "text":
            words = ocr_hits.get(t.value, {}).get(image_id, (0.0, []))[1]
            out[t.label()] = method.explain_text(t.value, extras["x_concept_ids"][r],
                                                 extras["x_concept_probs"][r], words)
        elif t.modality == "image" and "x_concept_ids" in q_extras:
            out[t.label()] = method.explain_image(q_extras["x_concept_ids"],
                                                  q_extras["x_concept_probs"],
                                                  extras["x_concept_ids"][r],
                                                  extras["x_concept_probs"][r])
    return out


def copy_hits(results: list[dict[str, Any]], folder: str | os.PathLike) -> list[str]:
    """Copy the files of ``results`` into ``folder`` (created if needed; it must be empty),
    named by rank: ``01-<name>``; returns the new paths."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"--copy-to {folder}: must be a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(len(results))))
    copied = []
    for rank, hit in enumerate(results, 1):
        target = folder / f"{rank:0{width}d}-{Path(hit['path']).name}"
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copy2(hit["path"], tmp)
        os.replace(tmp, target)
        copied.append(str(target))
    return copied


def search_folder(index: str | os.PathLike | FolderIndex, *, text: str | None = None,
                  image: str | None = None, audio: str | None = None,
                  terms: list[Term] | None = None, k: int = 10, offset: int = 0,
                  threshold: float | None = None, why: bool = False, method: Any = None,
                  model: str | os.PathLike | None = None, quiet: bool = False
                  ) -> dict[str, Any]:
    """Search an index folder (see :func:`search_index` for what comes back).

    The query is ``terms`` (a composed query), or one of ``text`` / ``image`` / ``audio``.
    ``method``: None (the index's own method, :func:`load_method`) or a pair (method object,
    fit description) that must match the manifest.
    """
    if terms is None:
        check_query(text=text, image=image, audio=audio)
        modality = "text" if text is not None else "image" if image is not None else "audio"
        terms = [Term(modality, str(text if text is not None else image or audio))]
    check_terms(terms)
    fi = index if isinstance(index, FolderIndex) else FolderIndex.open(index)
    if method is None:
        obj, _ = load_method(fi, model=model, quiet=quiet)
    else:
        obj, fit = method
        fit = dict(fit)
        fit.setdefault("fingerprint", getattr(obj, "fingerprint", None))
        fi.check_method(getattr(obj, "name", type(obj).__name__), fit)
    report = search_index(fi, obj, terms, k=k, offset=offset, threshold=threshold, why=why)
    report["space"] = report["spaces"][0] if len(report["spaces"]) == 1 else "+".join(
        report["spaces"])
    return report


__all__ = ["FolderIndex", "Term", "short_fingerprint", "parse_term", "check_terms",
           "embed_term", "load_method",
           "load_query_audio", "embed_query", "check_query", "search_index", "search_folder",
           "explain_hit", "copy_hits", "SCORE_ALL_BELOW"]
