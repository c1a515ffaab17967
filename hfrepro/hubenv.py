"""Is the Hugging Face Hub reachable? Answer fast, and fail fast with a useful message when it is not.

Without this, `from_pretrained("gpt2")` on a machine with no route to the Hub hangs about 47 s before it
fails (STACK.md). We probe the endpoint (HF_ENDPOINT, default https://huggingface.co) with one short TCP
connect; if it fails we switch the clients to offline mode so cached files still load and anything else
fails at once, and we name the embedded alternative.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import sys
from urllib.parse import urlsplit

from hfrepro.errors import UserError

_TRUE = {"1", "true", "yes", "on"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


@functools.lru_cache(maxsize=None)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the endpoint. False when offline mode is requested or the connect fails."""
    if offline_requested():
        return False
    url = urlsplit(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        go_offline()
        return False


def go_offline() -> None:
    """Put huggingface_hub, transformers and datasets in offline mode (also if already imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants as c
        c.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        import datasets.config as dc
        dc.HF_HUB_OFFLINE = True


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and ".." not in name


def cached_on_disk(repo_id: str, repo_type: str = "model") -> bool:
    """Is this repo already in the local Hugging Face cache (usable offline)?"""
    from huggingface_hub import scan_cache_dir
    try:
        return any(r.repo_id == repo_id and r.repo_type == repo_type for r in scan_cache_dir().repos)
    except Exception:
        return False


def require_hub(repo_id: str, what: str, alternatives: str, repo_type: str = "model") -> None:
    """Raise a clear UserError unless `repo_id` can be fetched from the Hub or is cached locally."""
    if not is_hub_id(repo_id):
        raise UserError(f"unknown {what} {repo_id!r}: not an embedded name, not a local path, not a Hub id",
                        fix=f"use one of the embedded {what}s: {alternatives}; or a local folder")
    requested = offline_requested()  # before the probe, which switches offline mode on when it fails
    if hub_reachable() or cached_on_disk(repo_id, repo_type):
        return
    why = ("offline mode is set (HF_HUB_OFFLINE)" if requested
           else f"the Hub ({endpoint()}) is not reachable from this machine")
    raise UserError(f"cannot load {what} {repo_id!r}: {why} and it is not in the local Hugging Face cache",
                    fix=f"use an embedded {what} instead ({alternatives}), a local folder, "
                        f"or point HF_ENDPOINT at a reachable mirror")
