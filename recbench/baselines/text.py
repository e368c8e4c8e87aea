"""Frozen item-text features for the LLM-for-RS variants.

An embedding model's vectors for every item text are projected onto their first
`dim` principal components (so they fit beside the models' id embeddings, whose size the
architectures require to match), scaled to unit standard deviation, and laid out as one row
per vocabulary entry. The table is frozen: the recommender learns around it, never into it.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from .data import FIRST, Vocab


def principal_components(vectors: np.ndarray, dim: int) -> np.ndarray:
    """(n, dim) projection of L2-normalised, centred vectors; deterministic signs."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:dim]
    signs = np.sign(comps[np.arange(comps.shape[0]), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    out = np.zeros((x.shape[0], dim), dtype=np.float64)
    out[:, : comps.shape[0]] = x @ comps.T
    std = out.std()
    return out / std if std > 0 else out


def item_table(vocab: Vocab, vectors: Dict[str, np.ndarray], dim: int) -> np.ndarray:
    """(vocab.size, dim) float32 rows; padding, unknown and text-less items are zero."""
    table = np.zeros((vocab.size, dim), dtype=np.float32)
    known = [i for i in vocab.items if i in vectors]
    if not known:
        return table
    proj = principal_components(np.stack([vectors[i] for i in known]), dim)
    rows = np.array([vocab.index[i] for i in known], dtype=np.int64)
    table[rows] = proj.astype(np.float32)
    table[:FIRST] = 0.0
    return table
