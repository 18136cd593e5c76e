"""The CronJob controller (`pkg/controller/cronjob`, v2): Jobs on a schedule.

A pass reconciles `status.active` with the Jobs the CronJob owns (noting
finished ones and their success time), trims finished Jobs to the history
limits, then asks one question: is there a scheduled time in
(lastScheduleTime, now] that has not run? If so — and it is not older than
startingDeadlineSeconds, and the concurrency policy allows — it creates the
Job for *that* time. The Job's name is derived from the scheduled minute, so
a retry after a crash or a stale cache hits AlreadyExists instead of running
the same slot twice. Every pass ends by requeueing the key at the next
scheduled time; there is no polling loop. `now` is injectable for tests.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from kubeling.api.errors import StatusError
from kubeling.client.resources import CRONJOBS, JOBS
from kubeling.controllers import podstate
from kubeling.controllers.base import Controller, controller_ref, deep_copy, is_being_deleted, owner_reference
from kubeling.controllers.cronjob.schedule import Schedule

Obj = dict[str, Any]
log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def job_finished(job: Obj) -> str | None:
    """"Complete" or "Failed" when the Job has finished, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def job_name(cronjob: Obj, scheduled: dt.datetime) -> str:
    """`getJobName`: the CronJob's name and the scheduled time in minutes since the epoch."""
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


class CronJobController(Controller):
    """Creates Jobs from a CronJob's template at its scheduled times."""

    NAME = "cronjob"
    WORKERS = 2

    now: Callable[[], dt.datetime] = staticmethod(lambda: dt.datetime.now(dt.UTC))  # type: ignore[assignment]

    def setup(self) -> None:
        self.cronjobs = self.enqueue_handlers(CRONJOBS)
        self.jobs = self.watch(JOBS, on_add=self._job_changed, on_update=lambda _o, n: self._job_changed(n),
                               on_delete=self._job_changed)

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.enqueue_key(f"{job['metadata']['namespace']}/{ref['name']}")

    async def reconcile(self, key: str) -> None:
        cronjob = self.cronjobs.get(key)
        if cronjob is None:
            return
        uid = cronjob["metadata"]["uid"]
        jobs = [j for j in self.jobs.indexer.by_index("namespace", cronjob["metadata"]["namespace"])
                if (ref := controller_ref(j)) is not None and ref.get("uid") == uid]
        status = deep_copy(cronjob.get("status") or {})
        await self._sync_active(cronjob, status, jobs)
        if not is_being_deleted(cronjob):
            await self._cleanup_history(cronjob, jobs)
            if not cronjob["spec"].get("suspend"):
                await self._schedule(key, cronjob, status)
        if status != (cronjob.get("status") or {}):
            try:
                await self.client.update(CRONJOBS, {**deep_copy(cronjob), "status": status}, subresource="status")
            except StatusError as err:
                if err.code != 409:
                    raise
                # Our cache was stale; the newer version's event is on its way. Jobs already created
                # are found again by name, so redoing the pass is safe.
                self.enqueue_key(key)

    async def _sync_active(self, cronjob: Obj, status: Obj, jobs: list[Obj]) -> None:
        """Drop finished or vanished Jobs from `status.active`; adopt unfinished owned ones missing from it."""
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        active = []
        for ref in status.get("active") or []:
            job = by_uid.get(ref.get("uid"))
            if job is None:
                continue  # deleted (by us, the user or the GC); nothing to track
            finished = job_finished(job)
            if finished is None:
                active.append(ref)
                continue
            if finished == "Complete":
                done = (job.get("status") or {}).get("completionTime")
                if done and (not status.get("lastSuccessfulTime") or done > status["lastSuccessfulTime"]):
                    status["lastSuccessfulTime"] = done
            await self.event(cronjob, "Normal", "SawCompletedJob",
                             f"Saw completed job: {job['metadata']['name']}, condition: {finished}")
        # An unfinished Job this controller scheduled but whose status write was lost (a crash, a conflict)
        # is put back. Jobs made by hand (`kubectl create job --from=cronjob/x`) are not tracked, as in Kubernetes.
        listed = {ref.get("uid") for ref in active}
        for job in jobs:
            scheduled = SCHEDULED_TIMESTAMP in (job["metadata"].get("annotations") or {})
            if (scheduled and job["metadata"]["uid"] not in listed and job_finished(job) is None
                    and not is_being_deleted(job)):
                active.append(self._ref(job))
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    @staticmethod
    def _ref(job: Obj) -> Obj:
        meta = job["metadata"]
        return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "namespace": meta["namespace"],
                "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion", "")}

    async def _cleanup_history(self, cronjob: Obj, jobs: list[Obj]) -> None:
        """Delete the oldest finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit."""
        spec = cronjob["spec"]
        for outcome, field in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(field)
            if limit is None:
                continue
            finished = sorted((j for j in jobs if job_finished(j) == outcome and not is_being_deleted(j)),
                              key=lambda j: ((j.get("status") or {}).get("startTime")
                                             or j["metadata"].get("creationTimestamp") or ""))
            for job in finished[:max(len(finished) - int(limit), 0)]:
                await self._delete_job(cronjob, job)

    async def _delete_job(self, cronjob: Obj, job: Obj) -> None:
        name = job["metadata"]["name"]
        try:
            await self.client.delete(JOBS, name, namespace=job["metadata"]["namespace"],
                                     propagation_policy="Background", preconditions={"uid": job["metadata"]["uid"]})
        except StatusError as err:
            if err.code not in (404, 409):
                raise
            return
        await self.event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _schedule(self, key: str, cronjob: Obj, status: Obj) -> None:
        spec = cronjob["spec"]
        try:
            schedule = Schedule.parse(spec["schedule"], spec.get("timeZone"))
        except (ValueError, KeyError) as err:
            await self.event(cronjob, "Warning", "UnparseableSchedule", f"unparseable schedule: {err}")
            return  # an unparseable schedule stays broken until the spec changes (which enqueues us)
        now = self.now()
        earliest = (podstate.parse_time(status.get("lastScheduleTime"))
                    or podstate.parse_time(cronjob["metadata"].get("creationTimestamp")) or now)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - dt.timedelta(seconds=int(deadline)))
        scheduled, missed = schedule.most_recent(earliest, now)
        self._requeue_at_next(key, schedule, now)
        if scheduled is None:
            return
        if missed > 100:
            await self.event(cronjob, "Warning", "TooManyMissedTimes",
                             f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds "
                             "or check clock skew")
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            return  # JobAlreadyActive: this slot is skipped (we retry it until a newer slot replaces it)
        if policy == "Replace":
            for ref in status.get("active") or []:
                job = self.jobs.get(f"{ref['namespace']}/{ref['name']}")
                if job is not None:
                    await self._delete_job(cronjob, job)
            status.pop("active", None)
        job = await self._create_job(cronjob, scheduled)
        if job is not None and job["metadata"]["uid"] not in {r.get("uid") for r in status.get("active") or []}:
            status.setdefault("active", []).append(self._ref(job))
        status["lastScheduleTime"] = podstate.format_time(scheduled)

    def _requeue_at_next(self, key: str, schedule: Schedule, now: dt.datetime) -> None:
        upcoming = schedule.next_after(now)
        if upcoming is not None:
            # A little slack so the pass runs after the minute has begun (`nextScheduleTimeDuration`).
            self.enqueue_after(key, (upcoming - now).total_seconds() + 0.1)

    async def _create_job(self, cronjob: Obj, scheduled: dt.datetime) -> Obj | None:
        template = deep_copy(cronjob["spec"].get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        tz = cronjob["spec"].get("timeZone")
        local = scheduled.astimezone(ZoneInfo(tz)) if tz else scheduled
        stamp = local.isoformat().replace("+00:00", "Z")
        name = job_name(cronjob, scheduled)
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": cronjob["metadata"]["namespace"],
                            "labels": dict(tmeta.get("labels") or {}),
                            "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_TIMESTAMP: stamp},
                            "ownerReferences": [owner_reference(cronjob)]},
               "spec": template.get("spec") or {}}
        try:
            created = await self.client.create(JOBS, job)
        except StatusError as err:
            if err.code == 409:  # this slot already ran (a stale cache or a retry): never twice
                return await self._existing(cronjob, name)
            await self.event(cronjob, "Warning", "FailedCreate", f"Error creating job: {err}")
            raise
        await self.event(cronjob, "Normal", "SuccessfulCreate", f"Created job {name}")
        return created

    async def _existing(self, cronjob: Obj, name: str) -> Obj | None:
        """The slot's Job if this CronJob owns it and it still runs (to keep it in `status.active`)."""
        try:
            job = await self.client.get(JOBS, name, namespace=cronjob["metadata"]["namespace"])
        except StatusError as err:
            if err.code == 404:
                return None
            raise
        ref = controller_ref(job)
        if ref is None or ref.get("uid") != cronjob["metadata"]["uid"] or job_finished(job) is not None:
            return None
        return job
