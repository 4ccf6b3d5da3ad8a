"""Lumbar-spine imaging decision support over CDS Hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the Flask app (see cds_service.app.create_app); lazy so the engine imports no Flask."""
    from cds_service.app import create_app as factory

    return factory(*args, **kwargs)
