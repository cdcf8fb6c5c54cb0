"""The REST API: `create_app()` builds the FastAPI application (run it with `sentimentkit serve`)."""

from sentimentkit.api.app import create_app

__all__ = ["create_app"]
