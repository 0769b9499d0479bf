"""The one confirmation gate every write tool passes.

A write tool only describes its change (`WritePlan`: how to read the current state, what
would change, how to apply one unit, how to undo). The gate previews it, asks a person,
re-reads right before writing, writes once, reads back, audits, and returns what changed
with the call that would undo it. Write tools have no other way to reach the client's
write methods: their handler *is* the gate.

Asking a person uses the SDK's resolver pattern, which works on both protocol eras: on
2025-11-25 the resolver sends the elicitation itself (so it can time out); on 2026-07-28
it returns `Elicit(...)` and the SDK round-trips an `InputRequiredResult`, whose answer is
bound to the exact question text (which carries the state's fingerprint). Clients without
elicitation fail closed and are pointed to the loopback approval page.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from sheepcrm_mcp.server.approvals import ApprovalPage, digest
from sheepcrm_mcp.server.settings import Settings
from sheepcrm_mcp.server.stores import Approvals, Audit, RateLimit
from sheepcrm_mcp.server.toolkit import Output, Registration, WriteDeps, WriteTool, answering
from sheepcrm_mcp.server.writes import Change, WritePlan
from sheepcrm_mcp.sheepcrm import SheepError

log = logging.getLogger("sheepcrm_mcp.gate")


class Confirm(BaseModel):
    """The form a person answers. Flat, one field."""

    confirm: bool = Field(
        default=False, title="Apply this change", description="Tick to apply exactly the change shown above."
    )


class ChangeLine(Output):
    target: str = Field(description="What changes: a field, an attendee or the task.")
    before: Any = None
    after: Any = None
    result: Literal["proposed", "applied", "not_applied", "unknown"] = "proposed"


class UndoCall(Output):
    tool: str
    arguments: dict[str, Any]


class WriteResult(Output):
    status: Literal["applied", "partial", "no_change", "not_approved", "approval_required"] = Field(
        description="applied: done and read back; partial: some changes applied (see changes); no_change: "
        "already so; not_approved: the person declined, nothing changed; approval_required: "
        "nothing changed, a person must approve at approval_url, then repeat the same call."
    )
    message: str
    changes: list[ChangeLine]
    approval_url: str | None = None
    undo: UndoCall | None = Field(None, description="The call that would reverse what was applied.")


@dataclass
class Prepared:
    """One request's plan and the state it was previewed against: built once per call (per round)."""

    request: BaseModel
    plan: WritePlan
    state: Any
    state_digest: str
    changes: list[Change]


@dataclass
class Decision:
    kind: Literal["noop", "approved", "declined", "cancelled", "timeout", "approval_required", "rejected", "expired"]
    channel: str
    url: str | None = None
    waited: bool = False  # a person was asked during this call, so the state must be read again before writing


def _elicitation_modes(ctx: Context) -> tuple[bool, bool]:
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    if elicitation is None:
        return False, False
    form = elicitation.form is not None or elicitation.url is None  # an empty capability means form
    return form, elicitation.url is not None


def _session_of(ctx: Context) -> str:
    """The HTTP session an approval belongs to, so one session cannot spend another's approval.

    stdio and in-process connections are one session per server; stateless HTTP has no session id,
    so there an approval is bound to its arguments and record only.
    """
    headers = ctx.headers
    return (headers.get("mcp-session-id") if headers is not None else None) or ""


class Gate:
    def __init__(
        self,
        settings: Settings,
        audit: Audit,
        approvals: Approvals,
        page: ApprovalPage,
        limit: RateLimit | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.approvals = approvals
        self.page = page
        self.limit = limit

    # ---- wiring --------------------------------------------------------------------

    def registration(self, spec: WriteTool[Any], make_deps: Callable[[Context], WriteDeps]) -> Registration:
        """The gated tool for a write spec: prepare (plan + state, once) -> confirm (a person) -> commit."""
        names = list(spec.input.model_fields)

        async def prepare(ctx: Context, **args: Any) -> Prepared:
            with answering(spec.name):
                request = spec.input.model_validate(args)
                if self.limit is not None:
                    await self.limit.check(spec.name, ctx)
                plan = await spec.handler(request, make_deps(ctx))
                state = await plan.read()
                return Prepared(request, plan, state, digest(state), plan.diff(state))
            raise AssertionError("unreachable")  # answering() re-raises every failure

        async def confirm(prepared: Annotated[Prepared, Resolve(prepare)], ctx: Context) -> Any:
            with answering(spec.name):
                return await self._ask(spec.name, prepared, ctx)

        kw = inspect.Parameter.KEYWORD_ONLY
        prepared_type = Annotated[Prepared, Resolve(prepare)]
        prepare.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("ctx", kw, annotation=Context), *(inspect.Parameter(n, kw) for n in names)]
        )
        prepare.__annotations__ = {"ctx": Context, "return": Prepared}
        confirm.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("prepared", kw, annotation=prepared_type),
                inspect.Parameter("ctx", kw, annotation=Context),
            ]
        )
        confirm.__annotations__ = {"prepared": prepared_type, "ctx": Context}
        prepare.__name__ = f"prepare_{spec.name}"
        confirm.__name__ = f"confirm_{spec.name}"

        async def call(request: BaseModel, ctx: Context, extras: dict[str, Any]) -> BaseModel:
            return await self._commit(spec.name, extras["prepared"], extras["confirmation"], ctx)

        extra = (
            inspect.Parameter("prepared", kw, annotation=prepared_type),
            inspect.Parameter("confirmation", kw, annotation=Annotated[ElicitationResult[Confirm], Resolve(confirm)]),
        )
        return Registration(
            spec.name, spec.title, spec.description, spec.input, WriteResult, spec.annotations, call, extra
        )

    # ---- asking --------------------------------------------------------------------

    def _arguments(self, request: BaseModel) -> dict[str, Any]:
        return request.model_dump(mode="json", exclude_none=True)

    async def _ask(self, tool: str, prepared: Prepared, ctx: Context) -> Any:
        plan, changes = prepared.plan, prepared.changes
        if not changes:
            return Decision("noop", "-")
        if self.settings.confirm == "none":
            return Decision("approved", "none (SHEEPCRM_CONFIRM=none)")
        args_digest = digest([tool, self._arguments(prepared.request), _session_of(ctx)])
        used = await self.approvals.consume(tool, args_digest, prepared.state_digest)
        if isinstance(used, str):
            return Decision("rejected" if used == "rejected" else "expired", "approval-page")
        if used is not None:
            return Decision("approved", "approval-page")
        form, _url_mode = _elicitation_modes(ctx)
        message = self._message(plan, changes, prepared.state_digest)
        if not form:
            pending = await self.approvals.create(
                tool, args_digest, prepared.state_digest, plan.summary, [c.line() for c in changes]
            )
            url = self.page.url_for(pending.id)
            log.warning("approval needed for %s: open %s", tool, url)
            return Decision("approval_required", "approval-page", url)
        if is_version_at_least(ctx.protocol_version or "", "2026-07-28"):
            return Elicit(message, Confirm)  # answered in a later round, in which prepare read the state afresh
        outcome: ElicitationResult[Confirm] | None = None
        with anyio.move_on_after(self.settings.confirm_timeout):
            outcome = await ctx.elicit(message, Confirm)
        if outcome is None:
            return Decision("timeout", "elicitation")
        decision = self._from_elicitation(outcome)
        decision.waited = True
        return decision

    @staticmethod
    def _message(plan: WritePlan, changes: list[Change], state_digest: str) -> str:
        lines = "\n".join(f"• {c.line()}" for c in changes)
        return f"{plan.summary}\n{lines}\n(record version {state_digest[:8]}) Apply this change?"

    @staticmethod
    def _from_elicitation(outcome: Any) -> Decision:
        if isinstance(outcome, AcceptedElicitation):
            data = outcome.data
            if isinstance(data, Decision):
                return data
            if isinstance(data, Confirm):
                return Decision("approved" if data.confirm else "declined", "elicitation")
            if isinstance(data, AcceptedElicitation | BaseModel):
                return Gate._from_elicitation(data)
        kind = type(outcome).__name__
        return Decision("declined" if kind.startswith("Declined") else "cancelled", "elicitation")

    # ---- committing ----------------------------------------------------------------

    async def _commit(self, tool: str, prepared: Prepared, outcome: Any, ctx: Context | None = None) -> WriteResult:
        decision = self._from_elicitation(outcome)
        plan = prepared.plan
        args = self._arguments(prepared.request)
        if decision.kind == "noop":
            return WriteResult(
                status="no_change", message=f"{plan.summary}: already in that state; nothing to do.", changes=[]
            )
        preview = prepared.changes if decision.kind != "approved" else []
        if decision.kind == "approval_required":
            await self.audit.record(tool=tool, outcome="approval_required", channel=decision.channel, arguments=args)
            return WriteResult(
                status="approval_required",
                approval_url=decision.url,
                changes=_lines(preview),
                message=(
                    f"Nothing was changed. This client cannot show confirmations, so a person must "
                    f"approve at {decision.url} (open it on this computer) within 10 minutes; then call "
                    f"{tool} again with exactly the same arguments and it will run once."
                ),
            )
        if decision.kind != "approved":
            await self.audit.record(tool=tool, outcome=decision.kind, channel=decision.channel, arguments=args)
            why = {
                "declined": "the person declined",
                "cancelled": "the confirmation was cancelled",
                "timeout": "nobody answered the confirmation in time",
                "rejected": "the person rejected it on the approval page",
                "expired": "the approval expired",
            }[decision.kind]
            return WriteResult(
                status="not_approved", changes=_lines(preview), message=f"Not approved ({why}); nothing was changed."
            )

        before = await plan.read() if decision.waited else prepared.state
        if digest(before) != prepared.state_digest:
            await self.audit.record(
                tool=tool, outcome="conflict", channel=decision.channel, arguments=args, before=before
            )
            raise ToolError(
                f"{plan.summary}: the record changed after the preview was shown, so nothing was "
                f"written. Call {tool} again to see the new preview."
            )
        changes = plan.diff(before)
        # The attempt is on record before anything is sent; if it cannot be recorded, nothing is sent.
        await self.audit.record(tool=tool, outcome="attempt", channel=decision.channel, arguments=args, before=before)
        units = [[c] for c in changes] if plan.one_write_per_change else [changes]
        failure: str | None = None
        cancelled: BaseException | None = None
        for done, unit in enumerate(units, start=1):
            try:
                await plan.apply(unit, before)
            except SheepError as exc:  # failed or unknown outcome: never write again, read back below
                failure = str(exc)
                break
            except anyio.get_cancelled_exc_class() as exc:
                cancelled = exc
                failure = "The call was cancelled; the remaining changes were not sent."
                break
            if len(units) > 1 and ctx is not None:
                await ctx.report_progress(done, len(units), f"{done} of {len(units)} written")
        # Whatever happened, find out what is now true and audit it, even while being cancelled.
        with anyio.CancelScope(shield=cancelled is not None):
            result = await self._settle(tool, args, plan, decision, before, changes, failure)
        if cancelled is not None:
            raise cancelled
        return result

    async def _settle(
        self,
        tool: str,
        args: dict[str, Any],
        plan: WritePlan,
        decision: Decision,
        before: Any,
        changes: list[Change],
        failure: str | None,
    ) -> WriteResult:
        try:
            after = await plan.read()
            pending = {c.key for c in plan.diff(after)}
            results = {c.key: ("not_applied" if c.key in pending else "applied") for c in changes}
        except SheepError as exc:
            after = None
            results = {c.key: "unknown" for c in changes}
            failure = (failure or "") + f" Reading the record back failed too ({exc})."
        applied = [c for c in changes if results[c.key] == "applied"]
        lines = [ChangeLine(target=c.label, before=c.before, after=c.after, result=results[c.key]) for c in changes]
        undo_args = plan.undo(applied) if applied else None
        undo = UndoCall(tool=tool, arguments=undo_args) if undo_args else None
        if not applied and "unknown" not in results.values():
            await self.audit.record(
                tool=tool,
                outcome="failed",
                channel=decision.channel,
                arguments=args,
                before=before,
                after=after,
                detail=failure,
            )
            raise ToolError(
                f"{plan.summary}: the write failed and the record is as it was; nothing was "
                f"changed. {failure or ''}".strip()
            )
        outcome_word = (
            "succeeded" if len(applied) == len(changes) else ("unknown" if "unknown" in results.values() else "partial")
        )
        await self.audit.record(
            tool=tool,
            outcome=outcome_word,
            channel=decision.channel,
            arguments=args,
            before=before,
            after=after,
            detail=failure,
        )
        if outcome_word == "succeeded":
            note = (
                f" sheepCRM reported a failure ({failure}) but reading the record back shows the change was "
                "applied; it was not sent again."
                if failure
                else ""
            )
            return WriteResult(
                status="applied",
                changes=lines,
                undo=undo,
                message=f"{plan.summary}: done and read back ({len(applied)} change(s)).{note}",
            )
        return WriteResult(
            status="partial",
            changes=lines,
            undo=undo,
            message=(
                f"{plan.summary}: only {len(applied)} of {len(changes)} change(s) were applied; each line "
                f"says what happened. It was not retried. {failure or ''}"
            ).strip(),
        )


def _lines(changes: list[Change]) -> list[ChangeLine]:
    return [ChangeLine(target=c.label, before=c.before, after=c.after) for c in changes]
