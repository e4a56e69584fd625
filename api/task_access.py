"""Access follows ownership for tasks, reports, referrals and bundles.

A task goes to the department a clue is *routed* to (the district it falls in), but the
clue's data belongs to the department that *owns* its resource (station, camera, scene
collection). Routing says who should act; ownership says whose data it is. So:

* the routed department always sees that the task exists, which resource it is about and
  who owns it (``owner_dept``, ``resource``, ``access``), and can ask the owner for access
  with one call (``POST /tasks/{id}/access-request``);
* the clue's details in the task (summary, location, detector, evidence ids) need the same
  thing ``GET /clues/{id}`` needs: ownership or a live ``history`` grant
  (``api.access.access_of``, the one rule);
* accepting and reporting need ``history``; referring (building the case bundle) and
  downloading the bundle need ``evidence``, since the bundle carries the evidence;
* every such access, allowed or refused, is written to the audit log (``task.<action>``),
  so the owner sees who used its data through a task (``GET /audit``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import HTTPException, Request

from api.access import What, access_of, unrestricted
from api.auth import User
from storage import access as access_store
from storage import tasks as store

Action = Literal["view", "accept", "report", "refer", "bundle"]
NEEDS: dict[str, What] = {"view": "clues", "accept": "clues", "report": "clues",
                          "refer": "evidence", "bundle": "evidence"}


def viewer_access(user: User, row: dict[str, Any]) -> str:
    """The viewer's standing on a visible task's clue, without a query.

    Everyone but admins and center operators sees only tasks of their own department
    (``api.tasks.can_see``), so their standing is the department's, computed in the task's
    SQL with the same database functions the rule uses.
    """
    return "role" if unrestricted(user, "clues") else store.department_access(row)


async def require(request: Request, user: User, task: dict[str, Any], action: Action) -> dict:
    """Allow ``action`` on the task's clue or raise 403 (the task itself is visible); audit.

    A task without a clue (a drawn inspection) carries no other department's data: the
    action is allowed and audited against the entity."""
    if task["clue_id"] is None:
        await access_store.audit(
            request.app.state.pool, user=user.as_dict(), action=f"task.{action}",
            resource_kind="entity", resource_id=task["entity"], owner_dept=task["department"],
            detail={"task_id": task["id"], "allowed": True, "access": "owner"})
        return {"access": "owner", "owner_dept": task["department"], "grant_id": None}
    kind, rid = task["resource_kind"], task["resource_id"]
    got = await access_of(request, user, NEEDS[action], kind, rid)
    allowed = got["access"] != "none"
    await access_store.audit(
        request.app.state.pool, user=user.as_dict(), action=f"task.{action}",
        resource_kind=kind, resource_id=rid, owner_dept=got["owner_dept"],
        clue_id=task["clue_id"], grant_id=got["grant_id"],
        detail={"task_id": task["id"], "allowed": allowed, "access": got["access"],
                "permission": NEEDS[action]})
    if not allowed:
        owner = got["owner_dept"] or "no department"
        raise HTTPException(403, f"the clue's {kind} {rid!r} belongs to {owner}: "
                                 f"{action} needs its owner's data or a live grant "
                                 f"({NEEDS[action]}); ask with POST /tasks/{task['id']}"
                                 "/access-request")
    return got
