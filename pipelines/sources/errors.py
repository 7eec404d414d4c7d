"""Errors a source raises when it cannot deliver; messages are one line and never contain secrets."""

from __future__ import annotations

import os
import re

SECRET_ENV_VARS = ("WANDB_API_KEY", "AXIOM_TOKEN")


class SourceError(RuntimeError):
    """A source failed as a whole (bad credentials, unknown project, server down).

    The ingest that met it commits nothing, so the next one resumes cleanly.
    """

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


def scrub(text: str) -> str:
    """Replace any secret from the environment (and bearer/basic tokens) in `text`."""
    for var in SECRET_ENV_VARS:
        secret = os.environ.get(var)
        if secret and len(secret) >= 4:
            text = text.replace(secret, f"<{var}>")
    text = re.sub(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 <redacted>", text)
    return " ".join(text.split())
