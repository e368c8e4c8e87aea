"""One way to hash a JSON-able document (cache keys, namespaces, config hashes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional


def json_sha256(doc: Any, length: Optional[int] = None) -> str:
    """sha256 hex of the document as canonical JSON (sorted keys; str() for other types)."""
    text = json.dumps(doc, sort_keys=True, default=str, ensure_ascii=True)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return digest[:length] if length else digest
