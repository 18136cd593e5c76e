"""The four PATCH flavours Kubernetes accepts, as pure functions on plain dicts.

One module per patch type (JSON patch, JSON merge patch, strategic merge
patch, server-side apply) plus `fieldpath` for SSA's field sets. Nothing here
mutates its inputs or knows about HTTP; failures are `errors.StatusError`s the
API server turns into Status bodies.
"""

from kubeling.api.patch.apply import server_side_apply, update_managed_fields
from kubeling.api.patch.jsonpatch import apply_json_patch
from kubeling.api.patch.merge import apply_merge_patch
from kubeling.api.patch.strategic import apply_strategic_merge_patch

__all__ = [
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "server_side_apply",
    "update_managed_fields",
]
