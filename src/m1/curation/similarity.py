"""Find a text's twin among many: exact by digest, near by MinHash LSH, confirmed by edit similarity.

    index = SimilarityIndex(NearDuplicateSettings(threshold=0.95))
    index.add("medqa/1", item_view(question, options))
    match = index.find(item_view(other_question, other_options))
    # Match(key="medqa/1", similarity=0.97, exact=False) or None
    signatures = index.signatures(many_views)     # in bulk, then find(view, signature) / add(...)

Lookups cost the same however many texts are indexed: an exact twin is a dictionary hit on the
text's digest, and near twins come from MinHash LSH (datasketch) over word shingles, which proposes
candidates whose shingle sets overlap (Jaccard above `lsh_threshold`). LSH is only a proposal:
every candidate is confirmed by the real similarity of the two texts (RapidFuzz `fuzz.ratio`, the
measure the paper's O(N²) rule used, here on normalised, option-order-free views), and only a
candidate at or above `threshold` is a twin. `lsh_threshold` sits well below what `threshold`
implies so that LSH rarely misses a true twin; the confirmation removes the extra candidates.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH
from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz


class NearDuplicateSettings(BaseModel):
    """How similar two views must be to count as the same item, and how candidates are proposed."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.95, gt=0.0, le=1.0, description="fuzz.ratio / 100 on normalised views that makes a twin")
    shingle_words: int = Field(2, ge=1, description="words per shingle for MinHash")
    num_perm: int = Field(128, ge=16, description="MinHash permutations")
    lsh_threshold: float = Field(0.4, gt=0.0, lt=1.0,
                                 description="shingle Jaccard above which LSH proposes a candidate")


@dataclass(frozen=True)
class Match:
    """The indexed text a query matched, and how closely (1.0 for an exact twin)."""

    key: str
    similarity: float
    exact: bool

    @property
    def closeness(self) -> str:
        return "exact" if self.exact else f"similarity {self.similarity:.3f}"

    def describe(self) -> str:
        return f"{self.key} ({self.closeness})"


def digest(view: str) -> bytes:
    return hashlib.blake2b(view.encode("utf-8"), digest_size=16).digest()


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, the pre-mix datasketch's "affine32" scheme applies to input hashes."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


# Shingles permuted per numpy step: bounds the (permutations x shingles) matrix to about 32 MB.
SHINGLES_PER_STEP = 65_536
# Folds the next word's hash into a shingle's hash (the 32-bit FNV prime).
SHINGLE_PRIME = np.uint32(0x01000193)


class _WordHashes(dict):
    """word → crc32, computed on first use (a corpus repeats a small vocabulary many times)."""

    def __missing__(self, word: str) -> int:
        value = self[word] = zlib.crc32(word.encode("utf-8"))
        return value


class SimilarityIndex:
    """Texts (views) under keys, for finding the closest indexed twin of a new text."""

    def __init__(self, settings: NearDuplicateSettings):
        self.settings = settings
        self._exact: dict[bytes, str] = {}
        self._views: dict[str, str] = {}
        self._order: dict[str, int] = {}
        self._lsh = MinHashLSH(threshold=settings.lsh_threshold, num_perm=settings.num_perm)
        # The template holds the permutations every signature shares. Its inputs are shingle hashes
        # computed here (hence the identity `int`); datasketch mixes them with murmur's finalizer
        # before permuting, and `signatures` does the same.
        self._template = MinHash(num_perm=settings.num_perm, seed=1, hashfunc=int)
        self._word_hashes = _WordHashes()

    def shingle_hashes(self, views: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """32-bit hashes of every view's shingles (runs of `shingle_words` words; a shorter view is one
        shingle), concatenated, and how many belong to each view.

        A shingle's hash combines its words' hashes (crc32, cached per word), so the shingles of all
        views are hashed in a few numpy steps rather than one string at a time.
        """
        size = self.settings.shingle_words
        flat: list[int] = []
        lengths: list[int] = []
        for view in views:
            words = view.split()
            flat.extend(map(self._word_hashes.__getitem__, words))
            lengths.append(len(words))
        words_hashed = np.asarray(flat, dtype=np.uint32)
        length = np.asarray(lengths, dtype=np.int64)
        owner = np.repeat(np.arange(len(views)), length)
        start = np.repeat(np.cumsum(length) - length, length)
        position = np.arange(len(flat))
        combined = words_hashed.copy()
        for offset in range(1, size):
            following = np.zeros_like(words_hashed)
            following[:len(flat) - offset] = words_hashed[offset:]
            inside = position + offset < start + length[owner]
            combined = np.where(inside, combined * SHINGLE_PRIME + following, combined)
        # A shingle starts at each position that leaves `size` words in its view (or at a short view's start).
        starts_shingle = position - start <= np.maximum(length[owner] - size, 0)
        return combined[starts_shingle], np.bincount(owner[starts_shingle], minlength=len(views))

    def signatures(self, views: Sequence[str]) -> list[MinHash | None]:
        """MinHash signatures of many views at once (None for a view without words).

        The values are exactly those of `MinHash.update_batch(shingle hashes)` with this index's
        permutations; computing them for many views per numpy step is what makes 200K rows fast.
        """
        hashes, counts = self.shingle_hashes(views)
        mixed = _fmix32(hashes)
        a, b = self._template.permutations
        ends = np.cumsum(counts)
        result: list[MinHash | None] = []
        first_view = 0
        while first_view < len(views):
            # One step covers whole views, at least one, up to about SHINGLES_PER_STEP shingles.
            begin = int(ends[first_view] - counts[first_view])
            last_view = int(np.searchsorted(ends, begin + SHINGLES_PER_STEP, side="right"))
            last_view = max(last_view, first_view + 1)
            step_counts = counts[first_view:last_view]
            permuted = a[:, None] * mixed[None, begin:int(ends[last_view - 1])] + b[:, None]  # wraps mod 2^32
            offsets = (np.cumsum(step_counts) - step_counts)[step_counts > 0]
            minima = iter(np.minimum.reduceat(permuted, offsets, axis=1).T if len(offsets) else [])
            for count in step_counts:
                result.append(MinHash(seed=1, hashfunc=int, hashvalues=next(minima),
                                      permutations=self._template.permutations, scheme="affine32") if count else None)
            first_view = last_view
        return result

    def signature(self, view: str) -> MinHash | None:
        return self.signatures([view])[0]

    def add(self, key: str, view: str, signature: MinHash | None = None) -> None:
        """Index `view` under `key`; an exact repeat of an indexed view keeps the first key."""
        self._exact.setdefault(digest(view), key)
        if key in self._views:
            return
        self._views[key] = view
        self._order[key] = len(self._order)
        if signature is None:
            signature = self.signature(view)
        if signature is not None:  # a view without words can only be found exactly
            self._lsh.insert(key, signature, check_duplication=False)

    def add_many(self, keys: Sequence[str], views: Sequence[str]) -> None:
        for key, view, signature in zip(keys, views, self.signatures(views)):
            self.add(key, view, signature)

    def find_exact(self, view: str) -> Match | None:
        key = self._exact.get(digest(view))
        return Match(key, 1.0, True) if key is not None else None

    def find(self, view: str, signature: MinHash | None = None) -> Match | None:
        """The most similar indexed view at or above the threshold (exact first), or None."""
        exact = self.find_exact(view)
        if exact is not None:
            return exact
        if signature is None:
            signature = self.signature(view)
        if signature is None:
            return None
        cutoff = 100.0 * self.settings.threshold
        best: tuple[float, int, str] | None = None
        for key in self._lsh.query(signature):
            score = fuzz.ratio(view, self._views[key], score_cutoff=cutoff)
            # Highest similarity wins; among equals the earliest indexed, so results never
            # depend on the (arbitrary) order LSH returns candidates in.
            if score and (best is None or (score, -self._order[key]) > (best[0], -best[1])):
                best = (score, self._order[key], key)
        return Match(best[2], round(best[0] / 100.0, 4), False) if best else None
