"""What a write tool hands the gate: a `WritePlan` of `Change`s.

An update reads the record, diffs it against the wanted values, applies the changes and says
how to undo them. A create fits the same shape: `read` looks for the record it would create (one it
made already, remembered or found by searching) and says what exists instead while it does not;
`diff` gives one Change per new value (before None) until the record exists, and none after; `apply`
sends the create once; the gate's read-back then finds the record, which is how it knows the create
happened. `made` tells the result which record that is (uri and name as read back) and gives the
arguments of `undo_tool` (the delete) that would remove it; a repeated call is then "no change" and
answers with the same record.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import idna

VALUE_CAP = 120  # characters of a value read from sheepCRM in a preview (a value to be written is never cut)
NAME_CAP = 80  # characters of a name or summary in a preview
_EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+)$")

# Code points that show as nothing (or as a plain blank) yet are stored: Unicode's Default_Ignorable_Code_Point
# (DerivedCoreProperties.txt: soft hyphen, U+034F, Hangul fillers U+115F U+1160 U+3164 U+FFA0, Mongolian and
# other variation selectors, tag characters...) and the Braille blank U+2800, which is a letter.
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip


def hidden(char: str) -> bool:
    """Characters a person cannot see or tell apart from a plain space: controls, line breaks, bidi and
    zero-width marks, default-ignorable code points, filler letters and every space but U+0020."""
    category = unicodedata.category(char)
    if category in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn") or (category == "Zs" and char != " "):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE)


def visible(text: str, cap: int | None = VALUE_CAP) -> str:
    """One line a person can trust: hidden characters shown as <U+XXXX>, text longer than `cap` cut and marked
    (cap None: never cut, for a value that will be written)."""
    out = "".join(f"<U+{ord(c):04X}>" if hidden(c) else c for c in text)
    return out if cap is None or len(out) <= cap else out[: cap - 1] + "…"


def first_hidden(text: str) -> str | None:
    """The first hidden character in `text`, as U+XXXX, or None."""
    return next((f"U+{ord(c):04X}" for c in text if hidden(c)), None)


def mail_domain(domain: str) -> str | None:
    """A non-ASCII email domain as mail servers see it (UTS 46 non-transitional, IDNA 2008: 'ß' stays 'ß',
    so glaßhouse.org is xn--glahouse-sya.org, not glasshouse.org), or None when it is not a valid domain."""
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None


def unsafe(text: str) -> str | None:
    """Why `text` may not be written (a hidden character, an email domain no mail server accepts), or None."""
    found = first_hidden(text)
    if found:
        return f"contains an invisible or control character ({found})"
    match = _EMAIL.match(text)
    if match and not match.group(2).isascii() and mail_domain(match.group(2)) is None:
        return "has an email domain that is not a valid international domain name (IDNA 2008)"
    return None


def _escaped(char: str) -> str:
    if char in '\\"':
        return "\\" + char
    if not hidden(char):
        return char
    return f"\\u{ord(char):04X}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}"


def quoted(text: str, cap: int | None = VALUE_CAP) -> str:
    r"""A text exactly as it is (or will be) stored, in double quotes, with a backslash, a quote and every hidden
    character escaped (\\, \", \uXXXX): the text inside the quotes is the whole value and nothing else. Longer
    than `cap` (a value read from sheepCRM), it is cut between characters, with … after the closing quote (None:
    never cut, for a value to be written)."""
    pieces = [_escaped(c) for c in text]
    inner, cut = "".join(pieces), False
    if cap is not None and len(inner) > cap:
        kept, size = [], 0
        for piece in pieces:
            if size + len(piece) > cap - 1:
                break
            kept.append(piece)
            size += len(piece)
        inner, cut = "".join(kept), True
    return f'"{inner}"' + ("…" if cut else "")


def show(value: Any, cap: int | None = VALUE_CAP) -> str:
    """A value as a person reads it in a preview, the one way every write shows its values: a text quoted exactly
    (`quoted`: a ", " or a line-break look-alike inside it cannot make one value look like two), a list in [ ]
    with an empty entry as (empty), nothing as (empty), a number as itself; a non-ASCII email domain is followed
    by its punycode (what mail servers see)."""
    if value in (None, "", [], {}):
        return "(empty)"
    if isinstance(value, list):
        return "[" + ", ".join(show(v, cap) for v in value) + "]"
    if isinstance(value, bool | int | float):
        return str(value)
    text = str(value)
    shown = quoted(text, cap)
    match = _EMAIL.match(text)
    if match and not match.group(2).isascii():
        shown += f" [domain {mail_domain(match.group(2)) or 'not a valid domain name'}]"
    return shown


def alphabets(text: str) -> list[str]:
    """The alphabets the letters of `text` come from, by the first word of each letter's Unicode name (LATIN,
    CYRILLIC, GREEK...): more than one, and look-alike letters may be passing for others."""
    return sorted({unicodedata.name(c, "?").split()[0] for c in text if c.isalpha()})


# Letters of other alphabets (and a few Latin ones and digits) that look like a Latin letter, after Unicode's
# compatibility folding (NFKC: full-width and mathematical letters are folded first). From Unicode's confusables
# (UTS 39) for the alphabets a name or an email is most often faked with: Cyrillic, Greek, Armenian, Cherokee.
_LOOKS_LIKE = str.maketrans({
    # Cyrillic
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y", "ɡ": "g", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M",
    "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "l", "Ј": "J", "Ԛ": "Q",
    "Ԝ": "W", "Ү": "Y", "Ӏ": "l", "ԍ": "G", "Ь": "b", "ь": "b",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "l", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o", "ν": "v", "ι": "i", "α": "a", "ρ": "p", "υ": "u", "χ": "x", "ϲ": "c",
    "ϳ": "j", "κ": "k", "γ": "y",
    # Armenian
    "օ": "o", "ս": "u", "ո": "n", "հ": "h", "ց": "g", "ք": "p", "զ": "q", "Օ": "O", "Ս": "U", "Տ": "S",
    # Cherokee
    "Ꭺ": "A", "Ᏼ": "B", "Ꮯ": "C", "Ꭰ": "D", "Ꭼ": "E", "Ꮐ": "G", "Ꮋ": "H", "Ꭵ": "i", "Ꭻ": "J", "Ꮶ": "K",
    "Ꮮ": "L", "Ꮇ": "M", "Ꮲ": "P", "Ꮪ": "S", "Ꭲ": "T", "Ꮩ": "V", "Ꮃ": "W", "Ꮓ": "Z", "Ꮤ": "W", "Ꮍ": "y",
    # Latin letters that pass for others
    "ı": "i", "ɑ": "a", "ʏ": "y",
})  # fmt: skip
_LATIN_ALIKE = str.maketrans({"I": "l", "1": "l", "|": "l", "0": "O"})  # one text's, so only compared, never shown
_LOOKS_LIKE_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def skeleton(text: str) -> str:
    """How `text` looks, roughly (UTS 39's skeleton for the alphabets above): two texts with the same skeleton can be
    told apart only letter by letter."""
    shape = unicodedata.normalize("NFKC", text).translate(_LOOKS_LIKE).translate(_LATIN_ALIKE)
    for pair, single in _LOOKS_LIKE_PAIRS:
        shape = shape.replace(pair, single)
    return shape


def passes_for_latin(text: str) -> str | None:
    """The Latin text `text` reads as when its letters all come from one other alphabet (or are full-width or
    mathematical forms) and every one of them looks like a Latin letter ("Јое", all Cyrillic, reads as "Joe");
    else None."""
    found = alphabets(text)
    if len(found) != 1 or found == ["LATIN"]:
        return None
    shape = unicodedata.normalize("NFKC", text).translate(_LOOKS_LIKE)
    letters = [c for c in shape if c.isalpha()]
    return shape if letters and all(c.isascii() for c in letters) else None


def lookalikes(changes: Sequence[Change]) -> list[str]:
    """The preview's notes on values to be written that read as something they are not: written wholly in another
    alphabet's look-alike letters, holding right-to-left letters (a screen reorders the numbers around them: "20 ש
    0999 7946" shows as 20 7946 0999), or a new value that looks the same as the old one (a change that looks like
    none), naming each field."""
    notes: list[str] = []
    for change in changes:
        field_name = change.key.replace("_", " ")
        for text in _texts(change.after):
            reads_as = passes_for_latin(text)
            if reads_as is not None:
                notes.append(
                    f"{field_name} {quoted(text, None)} is written in {', '.join(alphabets(text)).title()} letters "
                    f"that look like Latin ones: it can read as {quoted(reads_as, None)} but is not that text."
                )
        if any(unicodedata.bidirectional(c) in ("R", "AL") for text in _texts(change.after) for c in text):
            notes.append(
                f"{field_name} holds right-to-left letters (Hebrew, Arabic...): around them a screen may show its "
                "characters and numbers in another order than they are written; check it letter by letter."
            )
        before, after = change.before, change.after
        pairs = (
            zip(before, after, strict=True)
            if isinstance(before, list) and isinstance(after, list) and len(before) == len(after)
            else [(before, after)]
        )
        if any(isinstance(b, str) and isinstance(a, str) and b != a and skeleton(b) == skeleton(a) for b, a in pairs):
            notes.append(
                f"{field_name}: the new value looks the same as the old one but is not (look-alike letters): the "
                "change may look like none; check it letter by letter."
            )
    return notes


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def mixed_alphabets(changes: Sequence[Change]) -> str | None:
    """The preview's note on values to be written whose letters mix alphabets ("jаne@example.org" with a Cyrillic
    а reads as Latin), naming each value's field; None when there are none."""
    fields: list[str] = []
    found: set[str] = set()
    for change in changes:
        mixed = [a for text in _texts(change.after) if len(a := alphabets(text)) > 1]
        if mixed:
            fields.append(change.key.replace("_", " "))
            found.update(*mixed)
    if not fields:
        return None
    return (
        f"{', '.join(dict.fromkeys(fields))} mixes alphabets ({', '.join(sorted(found)).title()}): look-alike "
        "letters can make a value read as another (or hide a duplicate); check it letter by letter."
    )


@dataclass(frozen=True)
class Change:
    key: str  # machine name: field name, attendee uri, task action
    label: str  # what a person reads; a record's id first, whole, and its name through `show`, capped (record_label)
    before: Any
    after: Any
    # What sheepCRM's answer does not say when `before` is not a value read but "unknown" (e.g. "whether the task
    # is completed"): a read-back that still does not say it cannot tell whether the write worked.
    unread: str | None = None

    def line(self) -> str:
        # The value that will be written is shown whole (write inputs are capped, hidden characters refused); the
        # label is never cut either: the parts of it read from sheepCRM are capped where it is made.
        return f"{visible(self.label, None)}: {show(self.before)} → {show(self.after, None)}"


def record_label(ident: Any, name: str | None) -> str:
    """How a preview names a record: its id first and whole, then its name as a value (quoted, escaped, cut after
    NAME_CAP characters), so a name cannot pass for another record's id or push the real one out of sight."""
    return f"{ident} {show(name, NAME_CAP) if name else '(no name)'}"


@dataclass
class WritePlan:
    """How to read, compare, apply and undo one write request."""

    summary: str  # one line: what and on which record
    read: Callable[[], Awaitable[Any]]  # the current state, fresh (JSON-able)
    diff: Callable[[Any], list[Change]]  # the changes still needed given a state; [] = nothing to do
    apply: Callable[[list[Change], Any], Awaitable[None]]  # one write for these changes, given the state just read
    undo: Callable[[list[Change]], dict[str, Any] | None]  # arguments of the same tool that undo them, or None
    one_write_per_change: bool = False
    no_undo: str | None = None  # said in the preview and the result when the change cannot be undone
    warning: str | None = None  # something the person should weigh before approving (shown in every preview)
    listed: list[str] = field(default_factory=list)  # after the warning, one line each: records to look at first
    question: str = "Apply this change?"  # the preview's last line
    undo_tool: str | None = None  # the tool `undo` and `made` give arguments for, when not this one
    # A create: from a state that shows the record, what the result says of it and the arguments that undo it.
    made: Callable[[Any], tuple[str, dict[str, Any]]] | None = None
    reported: list[str] = field(default_factory=list)  # what sheepCRM's answers to the writes said they did

    def notes(self, changes: Sequence[Change] = ()) -> list[str]:
        """The extra lines of every preview: values of `changes` that mix alphabets or pass for other text
        (`lookalikes`), the warning, the listed records and the no-undo notice (each escaped; capped, but a note
        that quotes a value to be written is never cut)."""
        capped = [visible(n, 4 * NAME_CAP) for n in (self.warning, *self.listed, self.no_undo) if n]
        mixed = mixed_alphabets(changes)
        # lookalikes quotes values to be written (escaped), so its notes are never cut
        return [*([visible(mixed, 4 * NAME_CAP)] if mixed else []), *lookalikes(changes), *capped]
