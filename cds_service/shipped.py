"""The data the package ships (cds_service/data/ and the serve script), found with
importlib.resources, so a wheel install works from any directory.

mappings/ and cards/ at the top of the repository are links to the same folders, for reviewers
and the documentation; nothing at run time reads them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped_path(*parts: str) -> Path:
    """The file-system path of a shipped resource, e.g. shipped_path("data", "mappings")."""
    resource = files("cds_service").joinpath(*parts)
    # The loaders read by path (YAML and CSV files, directory listings, `sh` for the serve
    # script). A wheel installs as plain files, so the resource is a real path; a zipped
    # install would not be, and is refused here rather than failing later with a stranger error.
    if not isinstance(resource, Path):
        raise RuntimeError(f"cds_service must be installed as files, not zipped ({resource})")
    return resource


MAPPINGS_DIR = shipped_path("data", "mappings")
CARDS_DIR = shipped_path("data", "cards")
OPENAPI_DOCUMENT = shipped_path("data", "openapi.yaml")
HAZARD_LOG = shipped_path("data", "safety", "hazards.yaml")
SERVE_SCRIPT = shipped_path("serve.sh")
