"""batch/v1 validation: Job and CronJob (`pkg/apis/batch/validation`), and the cron
schedule parser both the validator and the CronJob controller rely on.

A Job's pods must not restart in place (the Job counts failures itself), so
the template's restartPolicy must be OnFailure or Never — and since pod
defaulting fills in Always, a Job that forgets it is rejected with the
familiar `Unsupported value: "Always"`. The selector of a Job is normally
generated from its uid after validation (see `defaults.apply_job_selector`),
so it is required here only when the user asked for `manualSelector`.

The schedule parser reproduces robfig/cron's `ParseStandard` error strings,
which Kubernetes passes through verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kubeling.api.errors import Cause, invalid, not_supported, required
from kubeling.api.validation.apps import validate_selector_and_template
from kubeling.api.validation.common import as_map, enum, immutable, nonnegative
from kubeling.api.validation.labels import GoValue, go_selector, is_label_value, required_detail

CONCURRENCY_POLICIES = ["Allow", "Forbid", "Replace"]
COMPLETION_MODES = ["NonIndexed", "Indexed"]

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (minimum, maximum, names) per field: minute, hour, day of month, month, day of week.
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _DAYS))
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def _parse_int(expr: str, names: dict[str, int]) -> int:
    if expr.lower() in names:
        return names[expr.lower()]
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise ValueError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if num < 0:
        raise ValueError(f"negative number ({num}) not allowed: {expr}")
    return num


def _parse_range(expr: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _parse_int(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _parse_int(low_and_high[1], names)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _parse_int(range_and_step[1], {})
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = high
    else:
        raise ValueError(f"too many slashes: {expr}")
    if start < low:
        raise ValueError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ValueError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step))


def parse_schedule(schedule: str) -> list[set[int]]:
    """Parse a standard 5-field cron spec (or a descriptor) to the allowed values per field.

    Raises ValueError with robfig/cron's message. `@every <duration>` parses to an empty list.
    """
    spec = schedule.strip()
    if not spec:
        raise ValueError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        tz, _, spec = spec.partition(" ")
        try:
            ZoneInfo(tz.split("=", 1)[1])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"provided bad location {tz.split('=', 1)[1]}: unknown time zone") from exc
        spec = spec.strip()
    if spec.startswith("@"):
        if spec.startswith("@every "):
            duration = spec[len("@every "):].strip()
            if not _DURATION.match(duration):
                raise ValueError(f'failed to parse duration {spec}: time: invalid duration "{duration}"')
            return []
        if spec not in _DESCRIPTORS:
            raise ValueError(f"unrecognized descriptor: {spec}")
        spec = _DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    out = []
    for text, (low, high, names) in zip(fields, _BOUNDS, strict=True):
        values: set[int] = set()
        for part in text.split(","):
            values |= _parse_range(part, low, high, names)
        out.append(values)
    return out


def validate_job_spec(spec: Mapping[str, Any], path: str, *, selector_required: bool) -> list[Cause]:
    causes: list[Cause] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        causes.extend(nonnegative(spec, key, path))
    mode = spec.get("completionMode")
    if mode is not None:
        if mode not in COMPLETION_MODES:
            causes.append(not_supported(f"{path}.completionMode", mode, COMPLETION_MODES))
        elif mode == "Indexed" and spec.get("completions") is None:
            causes.append(required_detail(f"{path}.completions", "when completion mode is Indexed"))
    causes.extend(validate_selector_and_template(spec, "job", path=path, restart_always=False,
                                                 selector_required=selector_required))
    policy = as_map(as_map(spec.get("template")).get("spec")).get("restartPolicy") or ""
    if policy not in ("OnFailure", "Never"):
        causes.append(not_supported(f"{path}.template.spec.restartPolicy", policy, ["OnFailure", "Never"]))
    return causes


def validate_job(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    manual = spec.get("manualSelector") is True
    causes: list[Cause] = []
    name = as_map(obj.get("metadata")).get("name") or ""
    if name and not manual:
        # The name becomes the value of the job-name label on every pod.
        causes.extend(invalid("metadata.name", name, m) for m in is_label_value(name))
    # Without manualSelector the selector is generated from the uid after validation on create.
    causes.extend(validate_job_spec(spec, "spec", selector_required=manual or old is not None))
    if old is not None:
        old_spec = as_map(old.get("spec"))
        causes.extend(immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector",
                                shown=go_selector(spec.get("selector"))))
        causes.extend(immutable(spec.get("completionMode"), old_spec.get("completionMode"),
                                "spec.completionMode"))
        elastic = spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
        if not elastic:
            causes.extend(immutable(spec.get("completions"), old_spec.get("completions"), "spec.completions"))
        if old_spec.get("suspend") is not True and spec.get("template") != old_spec.get("template"):
            causes.append(invalid("spec.template", GoValue("core.PodTemplateSpec{...}"), "field is immutable"))
    return causes


def validate_time_zone(tz: Any, path: str) -> list[Cause]:
    if tz is None:
        return []
    if tz == "":
        return [invalid(path, tz, "timeZone must be nil or non-empty string")]
    if str(tz).lower() == "local":
        return [invalid(path, tz, "timeZone must be an explicit time zone as defined in "
                                  "https://www.iana.org/time-zones")]
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        return [invalid(path, tz, f"unknown time zone {tz}")]
    return []


def validate_cron_job(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """ValidateCronJob, in Kubernetes' order: schedule, deadlines, policy, job template, limits, zone, name."""
    spec = as_map(obj.get("spec"))
    causes: list[Cause] = []
    schedule = spec.get("schedule") or ""
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        try:
            parse_schedule(schedule)
        except ValueError as exc:
            causes.append(invalid("spec.schedule", schedule, str(exc)))
        if "TZ" in schedule and spec.get("timeZone") is not None:
            causes.append(invalid("spec.schedule", schedule,
                                  "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    causes.extend(nonnegative(spec, "startingDeadlineSeconds", "spec"))
    causes.extend(enum(spec.get("concurrencyPolicy"), "spec.concurrencyPolicy", CONCURRENCY_POLICIES))
    job_spec = as_map(as_map(spec.get("jobTemplate")).get("spec"))
    causes.extend(validate_job_spec(job_spec, "spec.jobTemplate.spec", selector_required=False))
    if job_spec.get("manualSelector") is True:
        causes.append(not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"]))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes.extend(nonnegative(spec, key, "spec"))
    causes.extend(validate_time_zone(spec.get("timeZone"), "spec.timeZone"))
    # Jobs are named "<cronjob>-<11-character timestamp>", which must stay a 63-character label.
    name = as_map(obj.get("metadata")).get("name") or ""
    if len(name) > 52:
        causes.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    return causes
