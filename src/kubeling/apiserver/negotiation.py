"""Content negotiation: which representation a client asked for in `Accept`.

kube-apiserver picks the *first* media range (after ordering by `q`) that it can
serve, and the parameters `as`/`g`/`v` select a different object (a Table, an
aggregated discovery list) rather than a different encoding. kubectl depends on
this in two places (wire-protocol reference §1 items 4 and 5):

* `kubectl get` lists `as=Table` first and falls back to `NAME AGE` when we ignore it;
* discovery must answer aggregated `v2` only when the client offered `v2` — kubectl
  1.27–1.29 offer only `v2beta1` and break on a `v2` answer.

We only ever *encode* JSON: protobuf ranges are treated as "any encoding is fine"
(the client decodes by the response's Content-Type), never as a reason for 406.
Everything here is pure string handling so handlers and tests can share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

JSON_TYPES = frozenset({"application/json", "application/*", "*/*"})
TABLE_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_VERSIONS = ("v2", "v2beta1")

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: `type/subtype;param=value;q=…`."""

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def media_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def accepts_json(self) -> bool:
        """True when a JSON body satisfies this range (ignoring `as`/`g`/`v`)."""
        return self.media_type in JSON_TYPES

    def selects(self, *, as_: str, group: str, versions: tuple[str, ...]) -> str | None:
        """The version when this range asks for `as_` in `group` at one of `versions`."""
        p = self.params
        if p.get("as") == as_ and p.get("g") == group and p.get("v") in versions:
            return p["v"]
        return None


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header into media ranges, most preferred first.

    Like goautoneg (used by kube-apiserver): sorted by `q` descending, then
    concrete types before wildcards; otherwise the client's order is kept
    (the sort is stable). Malformed entries and `q=0` entries are dropped.
    """
    if not header:
        return []
    ranges: list[MediaRange] = []
    for raw in header.split(","):
        parts = [p.strip() for p in raw.split(";")]
        mt = parts[0].lower()
        if "/" not in mt:
            continue
        typ, _, sub = mt.partition("/")
        params: dict[str, str] = {}
        q = 1.0
        for part in parts[1:]:
            if "=" not in part:
                continue
            key, _, value = part.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params[key] = value
        if q <= 0 or not typ or not sub:
            continue
        ranges.append(MediaRange(typ, sub, params, q))
    return sorted(ranges, key=lambda r: (-r.q, r.type == "*", r.subtype == "*"))


def _first_selection(accept: str | None, *, as_: str, group: str, versions: tuple[str, ...]) -> str | None:
    """Walk ranges in order: a matching `as=` range wins, a plain range ends the search.

    Ranges carrying an `as=` we cannot serve are skipped, as kube skips them.
    A range without `as` (plain JSON, protobuf, `*/*`) means "the ordinary
    object" was preferred, so the special representation is not used.
    """
    for r in parse_accept(accept):
        if "as" in r.params:
            # Also for a protobuf range: we answer the same object as JSON, which clients decode.
            version = r.selects(as_=as_, group=group, versions=versions)
            if version is not None:
                return version
            continue
        return None
    return None


def table_version(accept: str | None) -> str | None:
    """`"v1"`/`"v1beta1"` when the client prefers a meta.k8s.io Table, else None.

    The returned version is the one to echo in the Table's apiVersion.
    """
    return _first_selection(accept, as_="Table", group=TABLE_GROUP, versions=TABLE_VERSIONS)


def wants_table(accept: str | None) -> bool:
    """True when the response should be a server-side printed Table."""
    return table_version(accept) is not None


def aggregated_discovery_version(accept: str | None) -> str | None:
    """`"v2"`/`"v2beta1"` when the client listed that aggregated discovery before plain JSON.

    Only a version the client actually offered is returned (answering v2 to a
    v2beta1-only kubectl breaks it); None means answer legacy APIVersions/APIGroupList.
    """
    return _first_selection(
        accept, as_="APIGroupDiscoveryList", group=DISCOVERY_GROUP, versions=DISCOVERY_VERSIONS
    )


def parse_bool(value: str) -> bool:
    """Go's strconv.ParseBool: kubectl sends `true`, the python client `True`."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
