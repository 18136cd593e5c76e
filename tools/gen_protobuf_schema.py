#!/usr/bin/env python3
"""Generate src/kubeling/apiserver/protobuf_schema.json from the Kubernetes sources.

Why: kubectl 1.32+ sends typed-client request bodies as Kubernetes protobuf
(`application/vnd.kubernetes.protobuf`).  To turn those bodies back into the
JSON the rest of kubeling understands we need, for every API message, its
field numbers and types (from the `generated.proto` files) *and* the Go JSON
behaviour of each field (from the `types.go` struct tags): the JSON name,
whether it is `omitempty`, whether the Go field is a pointer (zero values of
pointers are meaningful and kept) and whether it is `json:",inline"`
(flattened into the parent object, e.g. `Volume.volumeSource`).

Usage (the git dirs come from bare clones of kubernetes/api and
kubernetes/apimachinery):

    python tools/gen_protobuf_schema.py --api-git DIR --apimachinery-git DIR \
        [--ref release-1.33] [--out src/kubeling/apiserver/protobuf_schema.json]

Output format (minified JSON):

    {"ref": ..., "groups": {apiVersion: proto package},
     "wrappers": [message names that stand for a Go `[]string`],
     "messages": {message full name: {field number: [json name, type, flags]}}}

`type` is a scalar name (string/int32/int64/bool/bytes), a message full name,
or ["map", key type, value type].  `flags` is a bitmask: 1 repeated, 2 Go
pointer, 4 omitempty, 8 inline.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path
from typing import Any

REPEATED, POINTER, OMITEMPTY, INLINE = 1, 2, 4, 8
SCALARS = {"string", "int32", "int64", "bool", "bytes"}
MACHINERY_PROTOS = (
    "pkg/apis/meta/v1/generated.proto",
    "pkg/api/resource/generated.proto",
    "pkg/runtime/generated.proto",
    "pkg/util/intstr/generated.proto",
)
SKIP_API_DIRS = ("apidiscovery/", "imagepolicy/")  # never request bodies

_FIELD_RE = re.compile(r"^(optional|repeated|required)\s+(\S+)\s+(\w+)\s*=\s*(\d+)")
_MAP_RE = re.compile(r"^map<\s*(\S+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)")
_GO_FIELD_RE = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")
_GO_STRUCT_RE = re.compile(r"^type (\w+) struct \{$")
_GROUP_RE = re.compile(r'^const GroupName = "([^"]*)"', re.M)


def git_show(git_dir: str, ref: str, path: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{ref}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def git_ls(git_dir: str, ref: str) -> list[str]:
    out = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "--name-only", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.splitlines()


def parse_proto(text: str) -> tuple[str, dict[str, dict[int, tuple[str, Any, int]]], set[str]]:
    """Return (package, {message: {number: (proto name, type, repeated flag)}}, nullable wrappers)."""
    package = ""
    messages: dict[str, dict[int, tuple[str, Any, int]]] = {}
    nullable: set[str] = set()
    current: str | None = None
    pending_nullable = False
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("//"):
            if "+protobuf.nullable=true" in line:
                pending_nullable = True
            continue
        line = line.split("//", 1)[0].strip()
        if line.startswith("package "):
            package = line[len("package ") :].rstrip(";").strip()
        elif line.startswith("message "):
            current = line.split()[1]
            messages[current] = {}
            if pending_nullable:
                nullable.add(current)
            pending_nullable = False
        elif line == "}":
            current = None
        elif current is not None and (m := _MAP_RE.match(line)):
            key, value, name, number = m.groups()
            messages[current][int(number)] = (name, ["map", key, value], 0)
        elif current is not None and (m := _FIELD_RE.match(line)):
            label, typ, name, number = m.groups()
            messages[current][int(number)] = (name, typ, REPEATED if label == "repeated" else 0)
        elif line:
            pending_nullable = False
    return package, messages, nullable


def qualify(typ: Any, package: str) -> Any:
    if isinstance(typ, list):
        return [typ[0], qualify(typ[1], package), qualify(typ[2], package)]
    if typ in SCALARS:
        return typ
    if typ.startswith("."):
        return typ[1:]
    return f"{package}.{typ}"


def parse_go_structs(text: str) -> dict[str, dict[int, tuple[str, int]]]:
    """Return {struct: {proto number: (json name, flags)}} from Go struct tags."""
    structs: dict[str, dict[int, tuple[str, int]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if m := _GO_STRUCT_RE.match(line):
            current = m.group(1)
            structs[current] = {}
            continue
        if current is None:
            continue
        if line.startswith("}"):
            current = None
            continue
        m = _GO_FIELD_RE.match(line)
        if not m:
            continue
        _name, gotype, tags = m.groups()
        pb = re.search(r'protobuf:"([^"]*)"', tags)
        js = re.search(r'json:"([^"]*)"', tags)
        if not pb or not js:
            continue
        parts = pb.group(1).split(",")
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        json_parts = js.group(1).split(",")
        flags = 0
        if gotype.startswith("*"):
            flags |= POINTER
        if "omitempty" in json_parts[1:]:
            flags |= OMITEMPTY
        if "inline" in json_parts[1:]:
            flags |= INLINE
        structs[current][int(parts[1])] = (json_parts[0], flags)
    return structs


def collect(git_dir: str, ref: str, proto_paths: list[str], out: dict[str, Any]) -> None:
    files = git_ls(git_dir, ref)
    for proto_path in proto_paths:
        package, messages, nullable = parse_proto(git_show(git_dir, ref, proto_path))
        pkg_dir = proto_path.rsplit("/", 1)[0] + "/"
        go_files = [
            f
            for f in files
            if f.startswith(pkg_dir)
            and "/" not in f[len(pkg_dir) :]
            and f.endswith(".go")
            and not f.endswith("_test.go")
            and not f.endswith(".pb.go")
            and "zz_generated" not in f
            and "swagger_doc" not in f
        ]
        go_structs: dict[str, dict[int, tuple[str, int]]] = {}
        register = ""
        for go_file in go_files:
            text = git_show(git_dir, ref, go_file)
            go_structs.update(parse_go_structs(text))
            if go_file.endswith("/register.go"):
                register = text
        if (m := _GROUP_RE.search(register)) and pkg_dir.count("/") == 2 and not pkg_dir.startswith("pkg/"):
            version = pkg_dir.split("/")[1]
            out["groups"][f"{m.group(1)}/{version}" if m.group(1) else version] = package
        for msg, fields in messages.items():
            full = f"{package}.{msg}"
            if msg in nullable and [f[0] for f in fields.values()] == ["items"]:
                out["wrappers"].append(full)
            tags = go_structs.get(msg, {})
            table: dict[str, list[Any]] = {}
            for number, (name, typ, rep) in sorted(fields.items()):
                json_name, flags = tags.get(number, (name, 0))
                if not (flags & INLINE) and json_name != name:
                    print(f"note: {full}.{name} has JSON name {json_name!r}")
                table[str(number)] = [json_name, qualify(typ, package), rep | flags]
            out["messages"][full] = table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-git", required=True)
    parser.add_argument("--apimachinery-git", required=True)
    parser.add_argument("--ref", default="release-1.33")
    parser.add_argument("--out", default="src/kubeling/apiserver/protobuf_schema.json")
    args = parser.parse_args()
    out: dict[str, Any] = {"ref": args.ref, "groups": {}, "wrappers": [], "messages": {}}
    api_protos = [
        f
        for f in git_ls(args.api_git, args.ref)
        if f.endswith("/generated.proto") and not f.startswith(SKIP_API_DIRS)
    ]
    collect(args.apimachinery_git, args.ref, list(MACHINERY_PROTOS), out)
    collect(args.api_git, args.ref, api_protos, out)
    out["groups"] = dict(sorted(out["groups"].items()))
    Path(args.out).write_text(json.dumps(out, separators=(",", ":"), sort_keys=False) + "\n")
    print(f"wrote {args.out}: {len(out['messages'])} messages, {Path(args.out).stat().st_size} bytes")


if __name__ == "__main__":
    main()
