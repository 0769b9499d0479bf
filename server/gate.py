"""The one confirmation gate every write tool passes.

A write tool only describes its change (`WritePlan`: how to read the current state, what
would change, how to apply one unit, how to undo). The gate previews it, asks a person,
re-reads right before writing, writes once, reads back, audits, and returns what changed
with the call that would undo it. Write tools have no other way to reach the client's
write methods: their handler *is* the gate.

Asking a person uses the SDK's resolver pattern, which works on both protocol eras: on
2025-11-25 the resolver sends the elicitation itself (so it can time out); on 2026-07-28
it returns `Elicit(...)` and the SDK round-trips an `InputRequiredResult`, whose answer is
bound to the exact question (whose schema carries the state's fingerprint in a `$comment`, out of
what a person reads).

Nothing the model sees is enough to approve: a client without form elicitation (or every client
with SHEEPCRM_CONFIRM=page) gets the approval out of band. On 2025-11-25 a client that declares
URL-mode elicitation is handed a one-time link to show the person, and the call waits for their
decision; otherwise the server opens the person's browser itself and the result says only that
approval is waiting. No address, token or code reaches a tool result, an error or a log line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
from mcp.server.elicitation import (
    AcceptedElicitation,
    AcceptedUrlElicitation,
    DeclinedElicitation,
    ElicitationResult,
)
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from sheepcrm_mcp.server.approvals.page import ApprovalPage
from sheepcrm_mcp.server.approvals.pending import ApprovalRequest, Pending, digest
from sheepcrm_mcp.server.approvals.store import Approvals
from sheepcrm_mcp.server.audit import AuditEntry
from sheepcrm_mcp.server.caller import current_caller
from sheepcrm_mcp.server.errors import Refusal, answering, arguments, refuse_invalid
from sheepcrm_mcp.server.registration import Registration
from sheepcrm_mcp.server.settings import Settings, upstream_note
from sheepcrm_mcp.server.specs import GatedWrites, Output, WriteDeps, WriteTool
from sheepcrm_mcp.server.stores import Audit, RateLimit, StoreUnavailable
from sheepcrm_mcp.server.telemetry import tracer
from sheepcrm_mcp.server.writes import NAME_CAP, Change, WritePlan, unsafe, visible
from sheepcrm_mcp.sheepcrm import SheepError

log = logging.getLogger("sheepcrm_mcp.gate")


class Confirm(BaseModel):
    """The form a person answers. Flat, one strict boolean field; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    confirm: StrictBool = Field(
        default=False, title="Apply this change", description="Tick to apply exactly the change shown above."
    )


@functools.lru_cache(maxsize=256)
def confirm_form(state_digest: str) -> type[Confirm]:
    """The Confirm form bound to one previewed state: the fingerprint rides in the schema's `$comment`, so an
    answer given to one preview cannot be replayed against another state, and the person reads no jargon."""

    class Bound(Confirm):
        model_config = ConfigDict(title="Confirm", json_schema_extra={"$comment": f"state {state_digest[:16]}"})

    return Bound


class ChangeLine(Output):
    target: str = Field(description="What changes: a field, an attendee or the task.")
    before: Any = None
    after: Any = None
    result: Literal["proposed", "applied", "different", "not_applied", "unknown"] = "proposed"
    now: Any = None  # different: what reading back found instead of `after`


class UndoCall(Output):
    tool: str
    arguments: dict[str, Any]


class WriteResult(Output):
    status: Literal["applied", "partial", "no_change", "not_approved", "approval_required"] = Field(
        description="applied: done and read back; partial: some changes applied (see changes); no_change: "
        "already so; not_approved: the person declined, nothing changed; approval_required: "
        "nothing changed, a person was asked to approve in their browser; repeat the same call afterwards."
    )
    message: str
    changes: list[ChangeLine]
    undo: UndoCall | None = Field(None, description="The call that would reverse what was applied.")
    audit_failed: bool | None = Field(None, description="True when the write happened but its audit line failed.")


@dataclass
class Prepared:
    """One request's plan and the state it was previewed against: built once per call (per round)."""

    request: BaseModel
    plan: WritePlan
    state: Any
    state_digest: str
    changes: list[Change]
    answered: Literal["declined", "cancelled"] | None = None  # a "no" that arrived while the state was unreadable
    writes: GatedWrites | None = None  # the plan's write methods, opened only around apply


@dataclass
class Attempt:
    """An approved write about to be sent: the state it was checked against and the changes it makes."""

    tool: str
    plan: WritePlan
    decision: Decision
    arguments: dict[str, Any]
    before: Any
    changes: list[Change]

    def entry(self, outcome: str, after: Any = None, detail: str | None = None) -> AuditEntry:
        """Its audit line at one step: the attempt, then its outcome."""
        return AuditEntry(
            tool=self.tool,
            outcome=outcome,
            channel=self.decision.channel,
            arguments=self.arguments,
            before=self.before,
            after=after,
            detail=detail,
            approver=self.decision.approver,
        )


@dataclass
class Applied:
    """What sending an attempt's changes came to, before the record is read back."""

    failure: str | None = None  # what sheepCRM said when a write failed (or its outcome is unknown)
    moved: list[Change] = field(default_factory=list)  # not sent: the record changed before their turn
    cancelled: BaseException | None = None  # the call was cancelled; raised once the outcome is settled


@dataclass
class Decision:
    kind: Literal[
        "noop",
        "approved",
        "declined",
        "cancelled",
        "timeout",
        "approval_required",
        "unavailable",
        "rejected",
        "expired",
        "invalid",
        "contested",
    ]
    channel: str
    waited: bool = False  # a person was asked during this call, so the state must be read again before writing
    approver: dict[str, Any] | None = None  # hosted mode: who approved on the page (audited)
    approval: str | None = None  # the page's approval this write spends (its page may be asked how to undo it)
    message: str | None = None  # approval_required: where the person approves
    unticked: bool = False  # declined by accepting the form without ticking its box


def _elicitation_modes(ctx: Context) -> tuple[bool, bool]:
    caps = ctx.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    if elicitation is None:
        return False, False
    form = elicitation.form is not None or elicitation.url is None  # an empty capability means form
    return form, elicitation.url is not None


def _refuse_hidden(tool: str, args: dict[str, Any]) -> None:
    """Write arguments may not hold invisible or text-moving characters (they could fake a preview), nor an email
    domain that is not a valid international domain name."""
    for name, value in args.items():
        for item in value if isinstance(value, list) else [value]:
            why = unsafe(item) if isinstance(item, str) else None
            if why:
                raise Refusal(f"Invalid arguments for {tool}: {name} {why}; correct it and call again.")


def _answered_no(ctx: Context) -> Literal["declined", "cancelled"] | None:
    """On 2026-07-28, whether this round carries the person's "no" to the confirmation."""
    for answer in (ctx.input_responses or {}).values():
        action = getattr(answer, "action", None)
        if action in ("decline", "cancel"):
            return "declined" if action == "decline" else "cancelled"
    return None


def _answered_invalid(ctx: Context) -> bool:
    """On 2026-07-28, whether this round carries an "accept" whose form content is not a valid approval (a string
    for the tick, no content, an extra field): not approved, never a failure of the tool."""
    for answer in (ctx.input_responses or {}).values():
        if getattr(answer, "action", None) == "accept" and not _valid_confirm(getattr(answer, "content", None)):
            return True
    return False


def _valid_confirm(content: Any) -> bool:
    try:
        Confirm.model_validate(content)
    except ValidationError:
        return False
    return True


CONFIRM_OFF = "Approvals are OFF on this server (SHEEPCRM_CONFIRM=none): no person was asked."


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
        *,
        offered: frozenset[str],
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.approvals = approvals
        self.page = page
        self.limit = limit
        self.offered = offered  # the tools this caller has: an undo names one of them, or none is offered

    def _undo(self, tool: str, plan: WritePlan, arguments: dict[str, Any] | None) -> UndoCall | None:
        """The call that would reverse a write, when there is one and this caller can make it."""
        undo_tool = plan.undo_tool or tool
        return UndoCall(tool=undo_tool, arguments=arguments) if arguments and undo_tool in self.offered else None

    # ---- wiring --------------------------------------------------------------------

    def registration(self, spec: WriteTool[Any], make_deps: Callable[[Context], WriteDeps]) -> Registration:
        """The gated tool for a write spec: prepare (plan + state, once) -> confirm (a person) -> commit."""
        names = list(spec.input.model_fields)

        async def prepare(ctx: Context, **args: Any) -> Prepared:
            refuse_invalid(args)
            with answering(spec.name):
                _refuse_hidden(spec.name, args)
                request = arguments(spec.name, spec.input, args)
                if self.limit is not None:
                    await self.limit.check(spec.name, ctx)
                deps = make_deps(ctx)
                plan = await spec.handler(request, deps)
                plan.summary = visible(plan.summary, 2 * NAME_CAP)
                try:
                    state = await plan.read()
                except SheepError:
                    answered = _answered_no(ctx)
                    if answered is None:
                        raise
                    # The person said no; that is audited even though the record cannot be read now.
                    return Prepared(request, plan, None, "", [], answered, deps.writes)
                return Prepared(request, plan, state, digest(state), plan.diff(state), writes=deps.writes)
            raise AssertionError("unreachable")  # answering() re-raises every failure

        async def confirm(prepared: Annotated[Prepared, Resolve(prepare)], ctx: Context) -> Any:
            with answering(spec.name), tracer.start_as_current_span("gate ask", attributes={"mcp.tool": spec.name}):
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
            with tracer.start_as_current_span("gate commit", attributes={"mcp.tool": spec.name}) as span:
                result = await self._commit(spec.name, extras["prepared"], extras["confirmation"], ctx)
                if self.settings.confirm == "none" and result.status not in ("no_change", "not_approved"):
                    # said where the model and the person read it, with every write, not only at start
                    result = result.model_copy(update={"message": f"{CONFIRM_OFF} {result.message}"})
                span.set_attribute("sheepcrm_mcp.write.status", result.status)
                return result

        extra = (
            inspect.Parameter("prepared", kw, annotation=prepared_type),
            inspect.Parameter("confirmation", kw, annotation=Annotated[ElicitationResult[Confirm], Resolve(confirm)]),
        )
        # Every write answers a WriteResult: the instructions describe it once (catalogue.INSTRUCTIONS).
        return Registration(
            spec.name, spec.description, spec.input, WriteResult, spec.annotations, call, extra,
            list_output_fields=False,
        )

    # ---- asking --------------------------------------------------------------------

    def _arguments(self, request: BaseModel) -> dict[str, Any]:
        return request.model_dump(mode="json", exclude_none=True)

    async def _ask(self, tool: str, prepared: Prepared, ctx: Context) -> Any:
        plan, changes = prepared.plan, prepared.changes
        if prepared.answered is not None:
            return Decision(prepared.answered, "elicitation")
        if not changes:
            return Decision("noop", "-")
        if self.settings.confirm == "none":
            return Decision("approved", "none (SHEEPCRM_CONFIRM=none)")
        caller = current_caller()
        # An approval is spent only by whoever asked: on a hosted server the signed-in caller (in any of their
        # sessions: a client may reconnect while the person approves), elsewhere the same session.
        who = f"caller:{caller.sub}" if caller is not None else _session_of(ctx)
        args_digest = digest([tool, self._arguments(prepared.request), who])
        used = await self.approvals.consume(tool, args_digest, prepared.state_digest)
        # Its launch link was opened in two browsers, so it was cancelled: the person is asked again, below.
        contested = used == "contested"
        if isinstance(used, str) and not contested:
            return Decision("rejected" if used == "rejected" else "expired", "approval-page")
        if isinstance(used, Pending):
            return Decision("approved", "approval-page", approver=used.approver, approval=used.id)
        form, url_mode = _elicitation_modes(ctx)
        new_era = is_version_at_least(ctx.protocol_version or "", "2026-07-28")
        elsewhere = upstream_note(self.settings)  # the person reads it with every change they are asked about
        message = self._message(plan, changes, elsewhere)
        by_client = self.settings.confirm == "elicit" and self._client_may_approve(ctx, caller is not None)
        if by_client and form:
            if new_era:
                if _answered_invalid(ctx):
                    return Decision("invalid", "elicitation")
                # answered in a later round, in which prepare read the state afresh
                return Elicit(message, confirm_form(prepared.state_digest))
            outcome: ElicitationResult[Confirm] | None = None
            with anyio.move_on_after(self.settings.confirm_timeout):
                try:
                    outcome = await ctx.elicit(message, confirm_form(prepared.state_digest))
                except ValueError:  # the SDK's word for an accepted answer that does not match the form
                    log.warning("the approval form for %s was answered with content that is not a valid approval", tool)
                    return Decision("invalid", "elicitation", waited=True)
            if outcome is None:
                return Decision("timeout", "elicitation")
            decision = self._from_elicitation(outcome)
            decision.waited = True
            return decision
        pending = await self.approvals.create(
            ApprovalRequest(
                tool,
                args_digest,
                prepared.state_digest,
                plan.summary,
                [*(c.line() for c in changes), *plan.notes(changes), *([elsewhere] if elsewhere else [])],
                owner={**caller.audit(), "name": caller.name} if caller is not None else None,
            )
        )
        try:
            decision = await self._out_of_band(tool, pending, args_digest, prepared.state_digest, ctx,
                                               by_url=by_client and url_mode and not new_era, contested=contested)
        except BaseException:
            await self._withdraw(pending)
            raise
        if decision.kind not in ("approved", "approval_required"):
            await self._withdraw(pending)  # refused or answered without the page: nothing may approve it later
        return decision

    async def _withdraw(self, pending: Pending) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.approvals.withdraw(pending.id)
            except Exception as exc:  # the call is refused already; the approval expires on its own
                log.warning("an approval whose call ended could not be withdrawn (%s)", type(exc).__name__)

    async def _out_of_band(self, tool: str, pending: Pending, args_digest: str, state_digest: str, ctx: Context,
                           *, by_url: bool, contested: bool) -> Decision:
        """The person is asked outside the client's form: by a link the client shows them, or on the page opened in
        their browser."""
        if by_url:
            return await self._ask_by_url(tool, pending, args_digest, state_digest, ctx)
        if (pending.opened or self.page.launched(pending)) and not pending.expired():
            # The same request again while the person decides, whether or not their tab has loaded yet: the tab
            # they have stays valid (its launch token is not replaced); no new one opens.
            log.warning("approval for %s is still waiting in the browser it was opened in", tool)
            return Decision("approval_required", "approval-page", message=self.page.waiting(tool, pending, again=True))
        opened = await self.page.open(pending)
        if not opened:
            log.warning("approval needed for %s, but no browser could be opened for a person", tool)
            return Decision("unavailable", "approval-page")
        log.warning("approval needed for %s: %s", tool, self.page.where)
        return Decision(
            "approval_required", "approval-page", message=self.page.waiting(tool, pending, contested=contested)
        )

    async def _ask_by_url(
        self, tool: str, pending: Pending, args_digest: str, state_digest: str, ctx: Context
    ) -> Decision:
        """URL-mode elicitation: the client shows a one-time link to the person; wait for their decision."""
        url = await self.page.launch_url(pending)
        with anyio.move_on_after(self.settings.confirm_timeout):
            consent = await ctx.elicit_url(
                f"Approve a change to sheepCRM: {pending.summary}. Open this page to review and approve it.",
                url,
                pending.id,
            )
            if isinstance(consent, DeclinedElicitation):
                return Decision("declined", "url-elicitation", waited=True)
            if not isinstance(consent, AcceptedUrlElicitation):
                return Decision("cancelled", "url-elicitation", waited=True)
            while await self.approvals.decision(pending.id) == "pending":  # noqa: ASYNC110 - decided elsewhere
                await anyio.sleep(0.1)
            used = await self.approvals.consume(tool, args_digest, state_digest)
            with contextlib.suppress(Exception):
                await ctx.session.send_elicit_complete(pending.id)
            if used is None or isinstance(used, str):
                kind: Literal["rejected", "contested", "expired"] = (
                    "rejected" if used == "rejected" else "contested" if used == "contested" else "expired"
                )
                return Decision(kind, "url-elicitation", waited=True)
            return Decision("approved", "url-elicitation", waited=True, approver=used.approver, approval=used.id)
        return Decision("timeout", "url-elicitation")

    def _client_may_approve(self, ctx: Context, signed_in: bool) -> bool:
        """Whether the client's own answer (its form, or a link it is handed) may stand for the person's approval.

        On stdio the client is the person's own app, which started this server. Over HTTP with a bearer token the
        client is whoever holds that token: a file the person's own account (and a model's browser running as them)
        can read, or a token a cloned repository's config published. So there the approval page opened in the
        person's browser decides, whose one-time launch token, cookie and form token no client is handed; unless
        the person's own settings file says SHEEPCRM_HTTP_CLIENT_APPROVALS=true. A hosted server's callers sign
        in as themselves (docs/HOSTING.md) at the identity provider, and with the roles, that only the person's own
        settings file names (OWN_FILE_ONLY): a client's config cannot choose who signs them in."""
        return ctx.headers is None or signed_in or self.settings.http_client_approvals

    @staticmethod
    def _message(plan: WritePlan, changes: list[Change], notice: str | None = None) -> str:
        """What a person reads: the change only, and the server's notice when its key goes elsewhere. The approval
        stays bound to the state it was shown against (the gate compares the state's digest before writing), so no
        fingerprint needs to be shown."""
        lines = "\n".join([*(f"• {c.line()}" for c in changes), *plan.notes(changes), *([notice] if notice else [])])
        return f"{plan.summary}\n{lines}\n{visible(plan.question, NAME_CAP)}"

    @staticmethod
    def _from_elicitation(outcome: Any) -> Decision:
        if isinstance(outcome, AcceptedElicitation):
            data = outcome.data
            if isinstance(data, Decision):
                return data
            if isinstance(data, Confirm):
                if data.confirm:
                    return Decision("approved", "elicitation")
                return Decision("declined", "elicitation", unticked=True)
            if isinstance(data, AcceptedElicitation | BaseModel):
                return Gate._from_elicitation(data)
        return Decision("declined" if isinstance(outcome, DeclinedElicitation) else "cancelled", "elicitation")

    # ---- committing ----------------------------------------------------------------

    async def _commit(self, tool: str, prepared: Prepared, outcome: Any, ctx: Context | None = None) -> WriteResult:
        """Write what a person approved (apply), then find out what is now true and audit it (settle)."""
        decision = self._from_elicitation(outcome)
        if decision.kind != "approved":
            return await self._unapproved(tool, prepared, decision)
        attempt = await self._attempt(tool, prepared, decision)
        applied = await self._apply(attempt, prepared.writes, ctx)
        # Whatever happened, find out what is now true and audit it, even while being cancelled.
        with anyio.CancelScope(shield=applied.cancelled is not None):
            result = await self._settle(attempt, applied)
            if decision.approval is not None and result.undo is not None:
                await self._keep_undo(decision.approval, result.undo)
        if applied.cancelled is not None:
            raise applied.cancelled
        return result

    async def _keep_undo(self, approval_id: str, undo: UndoCall) -> None:
        """Keep with the approval the call that reverses its write: a browser that opens its launch link after the
        write (the person's, when another browser decided first) is told it."""
        try:
            call = f"{undo.tool} with {json.dumps(undo.arguments, ensure_ascii=False)}"
            await self.approvals.applied(approval_id, call)
        except Exception as exc:  # the write stands and its answer offers the undo; only the page would not name it
            log.warning("the undo of an approved write was not kept for its page (%s)", type(exc).__name__)

    async def _unapproved(self, tool: str, prepared: Prepared, decision: Decision) -> WriteResult:
        """Nothing is written: there is nothing to do, approval is waiting, or it was not given."""
        plan = prepared.plan
        if decision.kind == "noop":
            made, undo_args = plan.made(prepared.state) if plan.made else ("", None)
            return WriteResult(
                status="no_change",
                message=f"{plan.summary}: already in that state; nothing to do." + (f" {made}" if made else ""),
                changes=[],
                undo=self._undo(tool, plan, undo_args),
            )
        # Audited before anything is read again: a "no" is recorded even if sheepCRM is down now.
        await self.audit.record(
            AuditEntry(
                tool=tool,
                outcome=decision.kind,
                channel=decision.channel,
                arguments=self._arguments(prepared.request),
            )
        )
        if decision.kind == "unavailable":
            raise ToolError(
                f"Nothing was changed. This client cannot show confirmations and this server cannot open a "
                f"browser for a person, so {tool} cannot be approved here. Use an MCP client that supports "
                "elicitation, or run the server on the person's own computer."
            )
        if decision.kind == "approval_required":
            return WriteResult(
                status="approval_required",
                changes=_lines(prepared.changes),
                message=decision.message or "Nothing was changed yet; approval is waiting.",
            )
        why = {
            "declined": "the confirmation box was not ticked" if decision.unticked else "the person declined",
            "invalid": "the form answer was not a valid approval",
            "cancelled": "the confirmation was cancelled",
            "timeout": "nobody answered the confirmation in time",
            "rejected": "the person rejected it on the approval page",
            "expired": "the approval expired",
            "contested": "the approval page was opened in two places, so it was cancelled; the person must be asked "
            "again: call it once more to open a new page",
        }[decision.kind]
        return WriteResult(
            status="not_approved",
            changes=_lines(prepared.changes),
            message=f"Not approved ({why}); nothing was changed.",
        )

    async def _attempt(self, tool: str, prepared: Prepared, decision: Decision) -> Attempt:
        """The approved write, checked against the state the person saw and on record before anything is sent."""
        plan = prepared.plan
        args = self._arguments(prepared.request)
        before = await plan.read() if decision.waited else prepared.state
        if digest(before) != prepared.state_digest:
            await self.audit.record(
                AuditEntry(
                    tool=tool,
                    outcome="conflict",
                    channel=decision.channel,
                    arguments=args,
                    before=before,
                    approver=decision.approver,
                )
            )
            raise ToolError(
                f"{plan.summary}: the record changed after the preview was shown, so nothing was "
                f"written. Call {tool} again to see the new preview."
            )
        attempt = Attempt(tool, plan, decision, args, before, plan.diff(before))
        try:  # the attempt is on record before anything is sent; if it cannot be, nothing is sent
            await self.audit.record(attempt.entry("attempt"))
        except StoreUnavailable:
            raise
        except OSError as exc:
            log.error("audit log not writable (%s); %s not sent", type(exc).__name__, tool)
            raise ToolError(
                f"{plan.summary}: the audit log could not be written, so nothing was sent and nothing was changed. "
                "Check SHEEPCRM_AUDIT_LOG (disk space, permissions)."
            ) from None
        return attempt

    @staticmethod
    async def _apply(attempt: Attempt, writes: GatedWrites | None, ctx: Context | None) -> Applied:
        """Send the changes, once each: one write, or one per change, each checked against a fresh read first.
        A failed or unknown write stops it (never written again); a cancellation is kept for the caller to raise."""
        plan = attempt.plan
        units = [[c] for c in attempt.changes] if plan.one_write_per_change else [attempt.changes]
        applied = Applied()
        state = attempt.before
        for done, unit in enumerate(units, start=1):
            try:
                if done > 1:  # each unit is checked against a fresh read right before it is written
                    state = await plan.read()
                    try:
                        now = {c.key: c for c in plan.diff(state)}
                    except Refusal:  # the record no longer fits this request at all
                        now = {}
                    if any(c.key not in now or now[c.key].before != c.before for c in unit):
                        applied.moved.extend(unit)
                        continue
                assert writes is not None
                with writes.opened():  # the only place a plan's writes are reachable
                    await plan.apply(unit, state)
            except SheepError as exc:  # failed or unknown outcome: never write again, read back in settle
                applied.failure = str(exc)
                break
            except anyio.get_cancelled_exc_class() as exc:
                applied.cancelled = exc
                applied.failure = "The call was cancelled; the remaining changes were not sent."
                break
            except Exception:  # a fault of ours mid-write: what was sent is judged by the read-back, never guessed
                log.exception("%s: unexpected error while sending an approved write", attempt.tool)
                applied.failure = "An unexpected error stopped the write; the remaining changes were not sent."
                break
            if len(units) > 1 and ctx is not None:
                await ctx.report_progress(done, len(units), f"{done} of {len(units)} written")
        return applied

    async def _settle(self, attempt: Attempt, applied: Applied) -> WriteResult:
        """Read the record back, say change by change what happened, audit the outcome and offer the undo."""
        tool, plan, changes = attempt.tool, attempt.plan, attempt.changes
        failure, moved = applied.failure, applied.moved
        unchanged = False  # the read-back equals the state before the write: only then was nothing changed
        now: dict[str, Change] = {}
        try:
            after = await plan.read()
            now = {c.key: c for c in plan.diff(after)}
            # A change still needed with its old value untouched was not applied; one whose value moved, but not to
            # what was asked, was applied differently (judged against the state before the write, not the wish).
            # One whose value sheepCRM's answer did not say before the write and still does not say is unknown.
            results = {
                c.key: "applied" if c.key not in now
                else "unknown" if c.unread and now[c.key].unread
                else "not_applied" if now[c.key].before == c.before
                else "different"
                for c in changes
            }
            unchanged = digest(after) == digest(attempt.before)
        except (SheepError, Refusal) as exc:
            after = None
            results = {c.key: "unknown" for c in changes}
            failure = (failure or "") + f" Reading the record back failed too ({exc})."
        moved_keys = {c.key for c in moved}
        for key in moved_keys:
            results[key] = "not_applied"  # someone else changed it between the preview and its turn
        if moved:
            failure = (
                (failure or "")
                + f" {len(moved)} change(s) were not written because the record changed after the preview "
                "(a conflict): " + "; ".join(c.label for c in moved) + ". Call again to see the new preview."
            ).strip()
        if plan.reported:
            failure = " ".join(filter(None, [failure, "sheepCRM's answer: " + "; ".join(plan.reported) + "."]))
        done = [c for c in changes if results[c.key] == "applied"]
        changed = [c for c in changes if results[c.key] in ("applied", "different")]
        lines = [
            ChangeLine(target=c.label, before=c.before, after=c.after, result=results[c.key],
                       now=now[c.key].before if results[c.key] == "different" else None)
            for c in changes
        ]
        undo_args = plan.undo(changed) if changed else None
        made = ""
        if plan.made is not None and done and after is not None:  # a create: the record as read back
            made, undo_args = plan.made(after)
        undo = self._undo(tool, plan, undo_args)
        if not changed and "unknown" not in results.values() and (unchanged or moved):
            audited = await self._audit_outcome(attempt, "failed", after, failure)
            raise ToolError(
                f"{plan.summary}: the write failed and the record is as it was; nothing was "
                f"changed. {failure or ''}{'' if audited else AUDIT_FAILED}".strip()
            )
        outcome_word = (
            "succeeded" if len(done) == len(changes)
            else "unknown" if "unknown" in results.values()
            else "different" if changed
            else "changed_otherwise"
        )
        audited = await self._audit_outcome(attempt, outcome_word, after, failure)
        flag = None if audited else True
        if outcome_word == "succeeded":
            note = (
                f" sheepCRM reported a failure ({failure}) but reading the record back shows the change was "
                "applied; it was not sent again."
                if applied.failure
                else f" {failure}" if failure  # only what sheepCRM's answers said (plan.reported)
                else ""
            )
            return WriteResult(
                status="applied",
                changes=lines,
                undo=undo,
                audit_failed=flag,
                message=f"{plan.summary}: done and read back ({len(done)} change(s)).{note}"
                + (f" {made}" if made else "")
                + (f" {plan.no_undo}" if plan.no_undo and undo is None else "")
                + ("" if audited else AUDIT_FAILED),
            )
        if outcome_word == "different":
            what = (
                f"{plan.summary}: applied differently: {len(done)} of {len(changes)} change(s) read back as asked, "
                f"{len(changed) - len(done)} read back otherwise (each line's `now` says what is now true)"
            )
        elif outcome_word == "changed_otherwise":
            what = (
                f"{plan.summary}: none of the changes reads back as asked, but the record is no longer as it was "
                "before the write: read it to see what changed"
            )
        elif unread := [c.unread for c in changes if c.unread and results[c.key] == "unknown" and c.key in now]:
            said = "sheepCRM accepted the request" if applied.failure is None else "sheepCRM's outcome is unknown"
            what = f"{plan.summary}: {said} but its answer does not say {' or '.join(unread)}: check in sheepCRM"
        else:
            what = f"{plan.summary}: only {len(done)} of {len(changes)} change(s) were applied; each line says what " \
                "happened"
        return WriteResult(
            status="partial",
            changes=lines,
            undo=undo,
            audit_failed=flag,
            message=(f"{what}. It was not retried. {failure or ''}").strip()
            + (f" {plan.no_undo}" if plan.no_undo and undo is None and changed else "")
            + ("" if audited else AUDIT_FAILED),
        )

    async def _audit_outcome(self, attempt: Attempt, outcome: str, after: Any, failure: str | None) -> bool:
        """Audit what happened after a write was sent; a failure here must not hide what happened."""
        try:
            await self.audit.record(attempt.entry(outcome, after, failure))
        except (OSError, StoreUnavailable) as exc:
            log.error("audit not recorded after %s was sent (%s)", attempt.tool, type(exc).__name__)
            return False
        return True


AUDIT_FAILED = (
    " WARNING: the audit log could not be written after this write (its 'attempt' line was written before); "
    "check SHEEPCRM_AUDIT_LOG (or the shared store, SHEEPCRM_REDIS_URL)."
)


def _lines(changes: list[Change]) -> list[ChangeLine]:
    return [ChangeLine(target=c.label, before=c.before, after=c.after) for c in changes]
