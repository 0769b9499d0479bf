"""SQLite storage for the sandbox.

One generic `records` table holds every record (people, organisations, memberships,
events, ticket types, attendance, tasks, segments, help articles, users) as a JSON
`data` packet, like sheepCRM's v1 records. Small side tables index what the API
searches on: contacts (names, postcode, free text), emails, segment members, audit.
The read methods here are what the HTTP layer serves and what tests use to compute
expected values without going through HTTP.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sheepcrm_mcp.sandbox.records import (
    ATTENDANCE_STATUSES,
    CONTACT_TYPES,
    EVENT_STATES,
    contact_index_row,
    email_keys,
    fmt_dt,
    normalise_postcode,
    now_utc,
    parse_dt,
    primary,
    sort_key_for,
)

# The fields whose values v1 listings find through the field_values index rather than by reading every record of a
# type: the ones sheepcrm-mcp filters on (contacts by name or email, memberships by member, linked member or plan).
INDEXED = ("email", "member", "linked_members", "first_name", "last_name", "name", "membership_type")
SCHEMA = """
CREATE TABLE records (
    uri TEXT PRIMARY KEY, type TEXT NOT NULL, uid TEXT NOT NULL, display_value TEXT NOT NULL,
    link TEXT, sort_key TEXT, created TEXT NOT NULL, last_updated TEXT NOT NULL,
    state TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX records_type ON records (type, sort_key);
CREATE INDEX records_link ON records (link, type);
CREATE TABLE contacts (
    uri TEXT PRIMARY KEY, type TEXT NOT NULL, title TEXT, first_name TEXT, last_name TEXT,
    date_of_birth TEXT, postal_code TEXT, search TEXT NOT NULL, sort_name TEXT NOT NULL
);
CREATE INDEX contacts_sort ON contacts (sort_name);
CREATE INDEX contacts_last ON contacts (last_name);
CREATE TABLE emails (email TEXT NOT NULL, uri TEXT NOT NULL);
CREATE INDEX emails_email ON emails (email);
CREATE INDEX emails_uri ON emails (uri);
CREATE TABLE segment_members (segment TEXT NOT NULL, uri TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (segment, position));
CREATE TABLE audit (
    id INTEGER PRIMARY KEY, uri TEXT NOT NULL, related TEXT, date TEXT NOT NULL,
    user TEXT NOT NULL, message TEXT NOT NULL, diff TEXT NOT NULL
);
CREATE INDEX audit_uri ON audit (uri);
CREATE INDEX audit_related ON audit (related);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE field_values (uri TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL COLLATE NOCASE);
"""


def _values_of(records: str) -> str:
    """SQL adding to field_values the INDEXED fields' values of `records` (a table, or NEW in a trigger): each value,
    or each entry of a list, as the text a v1 filter compares (true/false as words)."""
    text = "CASE WHEN {0}.type IN ('true', 'false') THEN {0}.type ELSE CAST({0}.value AS TEXT) END"
    indexed = ", ".join(f"'{f}'" for f in INDEXED)
    source = "records r" if records == "records" else "(SELECT NEW.uri AS uri, NEW.data AS data) r"
    return (f"INSERT INTO field_values SELECT r.uri, f.key, {text.format('f')} FROM {source}, json_each(r.data) f "
            f"WHERE f.key IN ({indexed}) AND f.type NOT IN ('null', 'object', 'array');\n"
            f"INSERT INTO field_values SELECT r.uri, f.key, {text.format('e')} FROM {source}, json_each(r.data) f, "
            f"json_each(f.value) e WHERE f.key IN ({indexed}) AND f.type = 'array' "
            "AND e.type NOT IN ('null', 'object', 'array');\n")


# After the seed is written (filling the index at once is far quicker than a trigger per record); then kept by
# triggers on every write.
# A value holding a character beyond ASCII (its UTF-8 longer than its characters): NOCASE folds ASCII only, while a v1
# filter folds with Python's str.lower, under which such a value may still match an ASCII text (the Kelvin sign's
# "K" is "k"): so those values are always candidates, found through their own small index.
WIDE = "length(CAST(value AS BLOB)) != length(value)"
VALUES_INDEX = f"""
{_values_of("records")}
CREATE INDEX field_values_value ON field_values (field, value);
CREATE INDEX field_values_uri ON field_values (uri);
CREATE INDEX field_values_wide ON field_values (field) WHERE {WIDE};
CREATE TRIGGER records_values_insert AFTER INSERT ON records BEGIN
{_values_of("NEW")}END;
CREATE TRIGGER records_values_update AFTER UPDATE OF data ON records BEGIN
DELETE FROM field_values WHERE uri = OLD.uri;
{_values_of("NEW")}END;
"""

__all__ = [
    "ATTENDANCE_STATUSES", "EVENT_STATES", "Invalid", "NotFound", "Record", "Store", "now_utc", "parse_dt", "primary",
]


@dataclass(frozen=True)
class Record:
    uri: str
    type: str
    uid: str
    display_value: str
    link: str | None
    created: str
    last_updated: str
    state: str
    data: dict[str, Any]

    @property
    def bucket(self) -> str:
        return self.uri.split("/")[1]


class NotFound(Exception):
    """The record does not exist."""


class Invalid(Exception):
    """The request is well formed but its values are not acceptable."""


REUSE_SECONDS = 60.0
_BUILT: dict[tuple[str, int, str, Any], tuple[float, str, sqlite3.Connection]] = {}  # Store.create(reuse=True)'s copies
_BUILT_LOCK = threading.Lock()


class Store:
    """The sandbox database. Thread-safe: one connection guarded by a lock."""

    def __init__(self, path: str, bucket: str, *, owns_file: bool = False) -> None:
        self.path = path
        self.bucket = bucket
        self._owns_file = owns_file
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=MEMORY")
        self._db.execute("PRAGMA synchronous=OFF")
        self.build_seconds = 0.0

    # -- building -------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | None = None, *, size: str = "demo", seed: int = 1, bucket: str = "demo",
        variant: str | None = None, reuse: bool = False,
    ) -> Store:
        """Build a fresh, seeded database at `path` (a temp file when None; an existing file is replaced),
        reshaped for `variant` (sandbox/variants.py) when one is given.

        With `reuse`, a demo-size database this process built moments ago (same seed, bucket and variant, within
        REUSE_SECONDS and the same hour, so dates relative to now stay true) is copied instead of seeded again:
        the copy is as fresh as a new build (nothing written to one is seen by another) at a fraction of the cost.
        """
        from sheepcrm_mcp.sandbox.seed import build  # imported here: only building needs it
        from sheepcrm_mcp.sandbox.variants import check, reshape

        owns = path is None
        if path is None:
            fd, path = tempfile.mkstemp(prefix="sheepcrm-sandbox-", suffix=".sqlite3")
            os.close(fd)
            os.unlink(path)
        elif os.path.exists(path):
            os.unlink(path)
        store = cls(path, bucket, owns_file=owns)
        started = now_utc()
        key, hour = (size, seed, bucket, check(variant)), started.strftime("%Y-%m-%d %H")
        with _BUILT_LOCK:
            built = _BUILT.get(key) if reuse and size == "demo" else None
            if built is not None and built[1] == hour and time.monotonic() - built[0] < REUSE_SECONDS:
                built[2].backup(store._db)
                store.build_seconds = (now_utc() - started).total_seconds()
                return store
        store._db.executescript(SCHEMA)
        build(store.bucket, store.transaction, size=size, seed=seed)
        store._db.executescript(VALUES_INDEX)
        reshape(store, check(variant))
        store.build_seconds = (now_utc() - started).total_seconds()
        if reuse and size == "demo":
            copy = sqlite3.connect(":memory:", check_same_thread=False)
            with store._lock:
                store._db.backup(copy)
            with _BUILT_LOCK:
                _BUILT[key] = (time.monotonic(), hour, copy)
        return store

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._owns_file and os.path.exists(self.path):
            os.unlink(self.path)

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._db.execute(sql, tuple(params))
            return cur.fetchall()

    def _record_rows(self, where: str, params: Iterable[Any] = (), tail: str = "") -> list[Record]:
        sql = (
            "SELECT uri, type, uid, display_value, link, created, last_updated, state, data "
            f"FROM records WHERE {where} {tail}"
        )
        return [
            Record(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8])) for r in self._rows(sql, params)
        ]

    # -- meta -----------------------------------------------------------------

    def meta(self, key: str) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def demo_facts(self) -> dict[str, Any]:
        """Well-known uids, uris and emails for demos and tests (see sandbox/README.md)."""
        return dict(self.meta("demo_facts"))

    @property
    def api_user(self) -> str:
        """The uri of the user the API key belongs to (owner of "my" tasks)."""
        return str(self.meta("api_user"))

    # -- records --------------------------------------------------------------

    def uri(self, rtype: str, uid: str) -> str:
        return f"/{self.bucket}/{rtype}/{uid}/"

    def get(self, uri: str) -> Record | None:
        found = self._record_rows("uri = ?", (uri,))
        return found[0] if found else None

    def get_record(self, rtype: str, uid: str) -> Record | None:
        return self.get(self.uri(rtype, uid))

    def require(self, rtype: str, uid: str) -> Record:
        record = self.get_record(rtype, uid)
        if record is None or record.state == "deleted":  # a deleted contact is gone from the API
            raise NotFound(f"no {rtype} with uid {uid}")
        return record

    def display_of(self, uri: str) -> str:
        record = self.get(uri)
        return record.display_value if record else uri

    def by_type(
        self, rtype: str, *, with_deleted: bool = False, narrowed: Iterable[tuple[str, str, str]] = ()
    ) -> list[Record]:
        """The records of a type, in sort order; `with_deleted`: contacts deleted through the API too (kept here in
        state 'deleted' for sheepCRM's UI). `narrowed`: (field, "prefix" or "equal", ASCII text) that each record
        kept must hold, ignoring ASCII case: through the field_values index for an INDEXED field, else in its stored
        JSON (where a record holding an escaped character is kept, as its text could match once read). A superset
        of the records whose value equals or starts with the text, which the caller then filters exactly; it spares
        decoding every record of the type."""
        narrowed = list(narrowed)
        # `+type`: through the uris the index gives; otherwise SQLite walks every record of the type (as in `linked`)
        where, params = ["+type = ?" if any(f in INDEXED for f, _, _ in narrowed) else "type = ?"], [rtype]
        if not with_deleted:
            where.append("state != 'deleted'")
        for field, how, text_ in narrowed:
            if field in INDEXED and how == "equal":
                where.append("uri IN (SELECT uri FROM field_values WHERE field = ? AND value = ? UNION "
                             f"SELECT uri FROM field_values WHERE field = ? AND {WIDE})")
                params += [field, text_, field]
            elif field in INDEXED:
                where.append("uri IN (SELECT uri FROM field_values WHERE field = ? AND value >= ? AND value < ? UNION "
                             f"SELECT uri FROM field_values WHERE field = ? AND {WIDE})")
                params += [field, text_, text_ + "\U0010ffff", field]
            else:
                where.append("(data LIKE ? ESCAPE '!' OR instr(data, '\\') > 0)")
                params.append("%" + re.sub(r"([!%_])", r"!\1", text_) + "%")
        return self._record_rows(" AND ".join(where), params, "ORDER BY sort_key, uri")

    def linked(self, link: str, rtype: str) -> list[Record]:
        # `+type`: by the link's index; otherwise SQLite walks every record of the type in sort order (all 50,000+
        # memberships of the large seed for one contact's)
        return self._record_rows("link = ? AND +type = ?", (link, rtype), "ORDER BY sort_key, uri")

    def resource_counts(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT type, COUNT(*), MAX(last_updated) FROM records WHERE uri LIKE ? GROUP BY type ORDER BY type",
            (f"/{self.bucket}/%",),
        )
        return [{"count": r[1], "name": r[0], "last_modified": r[2]} for r in rows]

    def count(self, rtype: str) -> int:
        return int(self._rows("SELECT COUNT(*) FROM records WHERE type = ?", (rtype,))[0][0])

    # -- contacts -------------------------------------------------------------

    def search_contacts(self, q: str, *, offset: int = 0, limit: int = 25) -> tuple[list[Record], int]:
        """Free text over people and organisations: every word must appear (name, email, postcode, town)."""
        words = [w for w in q.lower().split() if w]
        if not words:
            return [], 0
        where = " AND ".join("c.search LIKE ? ESCAPE '\\'" for _ in words)
        params = [f"%{_escape_like(w)}%" for w in words]
        total = int(self._rows(f"SELECT COUNT(*) FROM contacts c WHERE {where}", params)[0][0])
        uris = [
            r[0]
            for r in self._rows(
                f"SELECT c.uri FROM contacts c WHERE {where} ORDER BY c.sort_name, c.uri LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        ]
        return self._in_order(uris), total

    def find_people(
        self,
        *,
        title: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        date_of_birth: str | None = None,
        postal_code: str | None = None,
        case_sensitive: bool = False,
    ) -> list[Record]:
        """People matching every given field: names, title and email exactly (case-insensitive),
        date of birth exactly, postcode by prefix ignoring spaces and case. `case_sensitive`: names, title and
        postcode must also match case (as sheepCRM's person search does; email never does)."""
        clauses = ["c.type = 'person'"]
        params: list[Any] = []
        for column, value in (("title", title), ("first_name", first_name), ("last_name", last_name)):
            if value:
                clauses.append(f"c.{column} = ?")
                params.append(value.strip().lower())
        if date_of_birth:
            clauses.append("c.date_of_birth = ?")
            params.append(date_of_birth.strip())
        if postal_code:
            clauses.append("c.postal_code LIKE ? ESCAPE '\\'")
            params.append(_escape_like(normalise_postcode(postal_code)) + "%")
        if email:
            clauses.append("c.uri IN (SELECT uri FROM emails WHERE email = ?)")
            params.append(email.strip().lower())
        uris = [
            r[0]
            for r in self._rows(
                f"SELECT c.uri FROM contacts c WHERE {' AND '.join(clauses)} ORDER BY c.sort_name, c.uri",
                params,
            )
        ]
        found = self._in_order(uris)
        if case_sensitive:
            exact = {"title": title, "first_name": first_name, "last_name": last_name}
            found = [
                r for r in found
                if all(r.data.get(k) == v.strip() for k, v in exact.items() if v)
                and (not postal_code or re.sub(r"\s+", "", r.data.get("postal_code") or "").startswith(
                    re.sub(r"\s+", "", postal_code)))
            ]
        return found

    def contacts_by_email(self, email: str) -> list[Record]:
        uris = [
            r[0]
            for r in self._rows(
                "SELECT DISTINCT uri FROM emails WHERE email = ? ORDER BY uri", (email.strip().lower(),)
            )
        ]
        return self._in_order(uris)

    def _in_order(self, uris: list[str]) -> list[Record]:
        if not uris:
            return []
        marks = ",".join("?" for _ in uris)
        found = {r.uri: r for r in self._record_rows(f"uri IN ({marks})", uris)}
        return [found[u] for u in uris if u in found]

    # -- memberships ----------------------------------------------------------

    def memberships(self, contact_uri: str) -> list[Record]:
        """Member records of a contact, newest start first."""
        found = self.linked(contact_uri, "member")
        return sorted(found, key=lambda r: r.data["start_date"], reverse=True)

    def live_memberships(self, contact_uri: str) -> list[Record]:
        """Memberships that count: not deleted and paid."""
        return [m for m in self.memberships(contact_uri) if m.data["record_state"] != "deleted" and m.data["paid"]]

    def membership_status(self, contact_uri: str, today: date | None = None) -> tuple[str, Record | None]:
        """(status, the membership that decides it): current, future, lapsed or none."""
        today = today or now_utc().date()
        members = self.live_memberships(contact_uri)
        current = [m for m in members if m.data["start_date"] <= today.isoformat() <= m.data["end_date"]]
        if current:
            return "current", max(current, key=lambda m: m.data["end_date"])
        future = [m for m in members if m.data["start_date"] > today.isoformat()]
        if future:
            return "future", min(future, key=lambda m: m.data["start_date"])
        if members:
            return "lapsed", max(members, key=lambda m: m.data["end_date"])
        return "none", None

    # -- events ---------------------------------------------------------------

    @staticmethod
    def event_states(event: Record, now: datetime | None = None) -> set[str]:
        """The states an event is listed under (see README: events)."""
        now = now or now_utc()
        data = event.data
        if data.get("status") == "draft":
            return {"all", "draft"}
        start, end = parse_dt(data["start_datetime"]), parse_dt(data["end_datetime"])
        states = {"all"}
        if end < now:
            states.add("past")
        elif start > now:
            states.add("future")
        else:
            states.add("running")
        if end.date() >= (now - timedelta(days=14)).date() and start.date() <= (now + timedelta(days=90)).date():
            states.add("current")
        return states

    def events(self, state: str = "all") -> list[Record]:
        now = now_utc()
        return [e for e in self.by_type("booking") if state in self.event_states(e, now)]

    def ticket_types(self, event_uri: str) -> list[Record]:
        return self.linked(event_uri, "ticket_type")

    def attendance(self, event_uri: str) -> list[Record]:
        return self.linked(event_uri, "attendance")

    def events_of(self, person_uri: str, *, by_buyer: bool = False) -> list[Record]:
        """Events where `person_uri` holds a session (as the booker: `person_ref`, or `booker` where variant
        guest-ref-booker puts the booker elsewhere), not deleted; by start. `by_buyer`: where they bought a session
        (`buyer`, seeded where someone else booked for the attendee, else the booker)."""
        def booker(s: Record) -> Any:
            return s.data.get("booker", s.data.get("person_ref"))

        uris = {
            s.link for s in self.by_type("attendance")
            if (s.data.get("buyer", booker(s)) if by_buyer else booker(s)) == person_uri
            and s.data.get("record_state") != "deleted"
        }
        return [e for e in self.by_type("booking") if e.uri in uris]

    # -- tasks ----------------------------------------------------------------

    def tasks(self, assigned_to: str | None = None) -> list[Record]:
        """Tasks, newest date first; only those assigned to `assigned_to` when given."""
        if assigned_to:
            return self._record_rows("type = 'journal' AND link = ?", (assigned_to,), "ORDER BY sort_key DESC, uri")
        return self._record_rows("type = 'journal'", (), "ORDER BY sort_key DESC, uri")

    @staticmethod
    def task_status(task: Record) -> str:
        """open or done (no documented field records a snooze)."""
        return "done" if task.data.get("completed") else "open"

    # -- segments -------------------------------------------------------------

    def segments(self, *, active_only: bool = False, name: str | None = None) -> list[Record]:
        found = self.by_type("segment")
        if active_only:
            found = [s for s in found if s.data.get("active")]
        if name:
            found = [s for s in found if name.lower() in s.data["name"].lower()]
        return found

    def segment_count(self, segment_uri: str) -> int:
        return int(self._rows("SELECT COUNT(*) FROM segment_members WHERE segment = ?", (segment_uri,))[0][0])

    def segment_members(
        self, segment_uri: str, *, q: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[Record], int]:
        """Members in segment order, optionally those whose name/email/postcode contain every word of q."""
        clauses, params = ["m.segment = ?"], [segment_uri]
        for word in (q or "").lower().split():
            clauses.append("c.search LIKE ? ESCAPE '\\'")
            params.append(f"%{_escape_like(word)}%")
        where = " AND ".join(clauses)
        base = f"FROM segment_members m JOIN contacts c ON c.uri = m.uri WHERE {where}"
        total = int(self._rows(f"SELECT COUNT(*) {base}", params)[0][0])
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
        uris = [r[0] for r in self._rows(f"SELECT m.uri {base} ORDER BY m.position{page}", params)]
        return self._in_order(uris), total

    def segment_member_by_uid(self, segment_uri: str, uid: str) -> Record | None:
        """The member of the segment whose record's uid is `uid` (the lookup's `q`, typed `uid` in openapi.yaml)."""
        rows = self._rows("SELECT m.uri FROM segment_members m JOIN records r ON r.uri = m.uri "
                          "WHERE m.segment = ? AND r.uid = ?", (segment_uri, uid))
        found = self._in_order([r[0] for r in rows])
        return found[0] if found else None

    # -- help -----------------------------------------------------------------

    def help_articles(self) -> list[Record]:
        return self.by_type("help")

    def search_help(self, q: str, limit: int = 10) -> list[Record]:
        """Articles ranked by matches: a word in the title counts 3, in the text 1; ties by title."""
        words = [w for w in re.findall(r"\w+", q.lower()) if len(w) > 1]
        scored = []
        for article in self.help_articles():
            title, text = article.data["title"].lower(), article.data["text"].lower()
            score = sum(3 * (w in title) + (w in text) for w in words)
            if score:
                scored.append((-score, article.data["title"], article))
        scored.sort(key=lambda item: (item[0], item[1]))
        return [item[2] for item in scored[:limit]]

    # -- audit ----------------------------------------------------------------

    def audit(self, uri: str, *, limit: int = 250, since_days: int = 180) -> list[dict[str, Any]]:
        """Audit entries on the record or naming it as related, newest first."""
        since = fmt_dt(now_utc() - timedelta(days=since_days))
        rows = self._rows(
            "SELECT uri, related, date, user, message, diff FROM audit "
            "WHERE (uri = ? OR related = ?) AND date >= ? ORDER BY date DESC, id DESC LIMIT ?",
            (uri, uri, since, limit),
        )
        return [
            {
                "uri": r[0],
                "related": r[1],
                "date": r[2],
                "user": r[3],
                "message": r[4],
                "clean_diff": json.loads(r[5]),
            }
            for r in rows
        ]

    # -- writes ---------------------------------------------------------------

    def replace_data(self, uri: str, data: dict[str, Any]) -> None:
        """Set a record's data as if it had always been so (no audit entry, same last_updated): for building."""
        with self.transaction() as db:
            db.execute("UPDATE records SET data = ? WHERE uri = ?", (json.dumps(data), uri))
            rtype = uri.split("/")[2]
            if rtype in CONTACT_TYPES:
                db.execute("DELETE FROM contacts WHERE uri = ?", (uri,))
                db.execute("INSERT INTO contacts VALUES (?,?,?,?,?,?,?,?,?)", contact_index_row(uri, rtype, data))
                db.execute("DELETE FROM emails WHERE uri = ?", (uri,))
                db.executemany("INSERT INTO emails VALUES (?, ?)", [(e, uri) for e in email_keys(data)])

    def update(self, uri: str, changes: dict[str, Any], *, message: str, user: str | None = None) -> Record:
        """Apply field changes to a record's data, bump last_updated, append one audit entry."""
        with self._lock, self.transaction() as db:
            record = self.get(uri)
            if record is None:
                raise NotFound(f"no record {uri}")
            data = dict(record.data)
            diff = []
            for field, value in changes.items():
                before = data.get(field)
                if before == value:
                    continue
                verb = "add" if before in (None, "", []) else "drop" if value in (None, "", []) else "change"
                diff.append({"field": field, "prev": _text(before), "value": _text(value), "verb": verb})
                data[field] = value
            stamp = now_utc()
            if stamp <= parse_dt(record.last_updated):
                stamp = parse_dt(record.last_updated) + timedelta(microseconds=1)
            updated = fmt_dt(stamp)
            if "last_updated" in data:
                data["last_updated"] = updated
            display = str(data.get("formatted_name") or data.get("display_value") or record.display_value)
            sorted_types = ("journal", "booking", *CONTACT_TYPES)
            sort_key = sort_key_for(record.type, data) if record.type in sorted_types else None
            link = _link(record.type, data, record.link)
            db.execute(
                "UPDATE records SET data = ?, last_updated = ?, display_value = ?, "
                "sort_key = COALESCE(?, sort_key), link = ?, state = 'updated' WHERE uri = ?",
                (json.dumps(data), updated, display, sort_key, link, uri),
            )
            if record.type in CONTACT_TYPES:
                db.execute("DELETE FROM contacts WHERE uri = ?", (uri,))
                db.execute("INSERT INTO contacts VALUES (?,?,?,?,?,?,?,?,?)", contact_index_row(uri, record.type, data))
                db.execute("DELETE FROM emails WHERE uri = ?", (uri,))
                db.executemany("INSERT INTO emails VALUES (?, ?)", [(e, uri) for e in email_keys(data)])
            db.execute(
                "INSERT INTO audit (uri, related, date, user, message, diff) VALUES (?,?,?,?,?,?)",
                (
                    uri,
                    link if record.type == "attendance" else None,
                    updated,
                    user or self.api_user,
                    message,
                    json.dumps(diff),
                ),
            )
        result = self.get(uri)
        assert result is not None
        return result

    def create_contact(self, rtype: str, data: dict[str, Any], *, user: str | None = None) -> Record:
        """A new person or organisation from a complete data packet: indexed for search, one audit entry."""
        if rtype not in CONTACT_TYPES:
            raise Invalid(f"{rtype} is not a contact type")
        uid = secrets.token_hex(12)
        uri = self.uri(rtype, uid)
        data = {**data, "uid": uid, "uri": uri}
        stamp = fmt_dt(now_utc())
        display = str(data.get("formatted_name") or data.get("name") or uri)
        with self._lock, self.transaction() as db:
            db.execute(
                "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)",
                (uri, rtype, uid, display, None, sort_key_for(rtype, data), stamp, stamp, "created", json.dumps(data)),
            )
            db.execute("INSERT INTO contacts VALUES (?,?,?,?,?,?,?,?,?)", contact_index_row(uri, rtype, data))
            db.executemany("INSERT INTO emails VALUES (?, ?)", [(e, uri) for e in email_keys(data)])
            fields = [k for k in ("first_name", "last_name", "name", "email", "postal_code") if data.get(k)]
            diff = [{"field": k, "prev": "", "value": _text(data[k]), "verb": "add"} for k in fields]
            db.execute(
                "INSERT INTO audit (uri, related, date, user, message, diff) VALUES (?,?,?,?,?,?)",
                (uri, None, stamp, user or self.api_user, "Record created via API", json.dumps(diff)),
            )
        created = self.get(uri)
        assert created is not None
        return created

    def delete(self, uri: str, *, user: str | None = None) -> None:
        """Delete a contact as sheepCRM's v1 DELETE does: gone from the API (reads, listings, searches), kept
        here in state 'deleted' (sheepCRM's UI can recover it; its API cannot)."""
        with self._lock, self.transaction() as db:
            record = self.get(uri)
            if record is None or record.state == "deleted":
                raise NotFound(f"no record {uri}")
            db.execute("UPDATE records SET state = 'deleted', last_updated = ? WHERE uri = ?", (fmt_dt(now_utc()), uri))
            db.execute("DELETE FROM contacts WHERE uri = ?", (uri,))
            db.execute("DELETE FROM emails WHERE uri = ?", (uri,))
            db.execute(
                "INSERT INTO audit (uri, related, date, user, message, diff) VALUES (?,?,?,?,?,?)",
                (uri, None, fmt_dt(now_utc()), user or self.api_user, "Record deleted via API", "[]"),
            )

    def set_attendance(self, event_uri: str, person_uri: str, status: str, *, first_only: bool = False) -> list[Record]:
        """Set the status of every attendance session of a person at an event (`first_only`: the first one)."""
        if status not in ATTENDANCE_STATUSES:
            raise Invalid(f"status must be one of {', '.join(ATTENDANCE_STATUSES)}")
        sessions = [
            s
            for s in self.attendance(event_uri)
            if s.data.get("person_ref") == person_uri
            and not s.data.get("guest")
            and s.data.get("record_state") != "deleted"
        ]
        if not sessions:
            raise NotFound(f"{person_uri} is not an attendee of {event_uri}")
        if first_only:
            sessions = sessions[:1]
        return [self.update(s.uri, {"status": status}, message=f"attendance set to {status}") for s in sessions]

    def complete_task(self, uid: str) -> Record:
        task = self.require("journal", uid)
        if task.data.get("completed"):
            return task
        return self.update(task.uri, {"completed": True, "entry_type": "completed_reminder"}, message="task completed")

    def uncomplete_task(self, uid: str) -> Record:
        task = self.require("journal", uid)
        if not task.data.get("completed"):
            return task
        return self.update(
            task.uri, {"completed": False, "entry_type": "reminder"}, message="task marked as not complete"
        )

    def snooze_task(self, uid: str) -> Record:
        """Move the due date 24 hours on, or to 24 hours from now if overdue (the 2024-12 cut's words;
        the operation takes no parameters)."""
        task = self.require("journal", uid)
        if task.data.get("completed"):
            raise Invalid("a completed task cannot be snoozed")
        new = max(parse_dt(task.data["date"]), now_utc()) + timedelta(hours=24)
        return self.update(task.uri, {"date": fmt_dt(new)}, message="task snoozed for 24 hours")


def _link(rtype: str, data: dict[str, Any], current: str | None) -> str | None:
    if rtype == "journal":
        return str(data.get("assigned_to") or "") or None
    return current


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
