"""The REST API: `create_app()` builds the FastAPI application (run it with `sentimentkit serve`)."""

from sentimentkit.api.app import create_app
from sentimentkit.api.errors import ApiError

__all__ = ["ApiError", "create_app"]
