"""Is a model hub reachable? Checked once per process, in well under a second when it is not.

Without this check a pretrained request on a machine with no network spends about a minute in
huggingface_hub's and urllib's retries before failing. ``hub_offline()`` answers from, in order:
``TRANSFERLENS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` (offline), ``TRANSFERLENS_OFFLINE=0`` (online, no probe),
else one TCP connection to huggingface.co:443 with a 2 s timeout (a machine without DNS fails in
milliseconds). When offline, ``HF_HUB_OFFLINE`` is set for this process so that transformers, timm and
sentence-transformers read their local caches only (weights already downloaded keep working).
"""

from __future__ import annotations

import functools
import os
import socket

HUB_HOST = ("huggingface.co", 443)
PROBE_TIMEOUT_S = 2.0


@functools.lru_cache(maxsize=1)
def hub_offline() -> bool:
    """True when no hub can be reached (see the module docstring for the order of checks)."""
    flag = os.environ.get("TRANSFERLENS_OFFLINE")
    if flag is not None and flag.strip().lower() in ("0", "false", "no"):
        return False
    offline = (flag is not None and flag.strip().lower() in ("1", "true", "yes")) or \
        os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    if not offline:
        try:
            with socket.create_connection(HUB_HOST, timeout=PROBE_TIMEOUT_S):
                pass
        except OSError:
            offline = True
    if offline:
        go_offline()
    return offline


def go_offline() -> None:
    """Make the hub libraries use local files only, also when they were imported before this call."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
