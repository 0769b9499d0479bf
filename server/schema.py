"""The JSON schemas a tool publishes, in as few characters as they can be said.

Every character of tools/list is paid for in the model's context on every turn: generated titles,
null defaults and `null` alternatives are folded away (`compact_schema`); arguments drop what is checked
on every call anyway (`argument_schema`); answers say which fields come back, their closed value sets and
the meanings marked SHOWN, not what the answer's own JSON shows (`answer_schema`).
"""

from __future__ import annotations

from typing import Any

# Checked on every call and left out of published arguments. An enum keeps its `type`: some model APIs refuse
# an enum without `type: string`.
CHECKED_ON_CALL = ("maxLength", "minLength", "minimum", "minItems")


def argument_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Published input schema: optional means omit it (null is never needed). Lengths, lower bounds (a limit of
    at least 1, days from 0) and unknown arguments are still checked on every call, with an error naming the
    rule or the allowed arguments; they are left out here because every character of tools/list is paid for
    in the model's context on every turn. Upper bounds stay: they tell the model how much it may ask for."""
    props = {}
    for name, sub in schema.get("properties", {}).items():
        sub = {k: v for k, v in sub.items() if k not in CHECKED_ON_CALL}
        if isinstance(sub.get("type"), list) and "null" in sub["type"]:
            rest = [t for t in sub["type"] if t != "null"]
            sub["type"] = rest[0] if len(rest) == 1 else rest
        props[name] = sub
    return {k: v for k, v in schema.items() if k != "additionalProperties"} | {"properties": props}


# An output field's json_schema_extra when the model must read its description to read the answer right (whose
# guest, what counts as booked): answer_schema keeps those descriptions, and only those, in tools/list.
SHOWN: dict[str, Any] = {"shown": True}


def answer_schema(schema: Any, top: bool = True, defs: dict[str, Any] | None = None) -> Any:
    """Output schemas describe answers: None is never sent (see Output), so nullable means optional.

    Published: which fields an answer has, their closed value sets (enum), and the meanings marked SHOWN (a nested
    record lists its SHOWN fields). Dropped: other descriptions, defaults, nested record shapes (the tool
    description carries the meaning) and each field's JSON type, which the answer's own JSON shows; every
    character of tools/list costs the model context on every turn. Answers are still checked against the full
    output model before they are sent.
    """
    if isinstance(schema, list):
        return [answer_schema(s, False, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if top:
        defs = schema.get("$defs") or {}
    shown = schema.get("shown") is True
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "shown" or (key == "description" and not shown) or key == "default":
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "$defs":
            continue  # nested records are described by the tool description, not re-listed here
        if key == "$ref":
            out["type"] = "object"
            nested = (defs or {}).get(str(value).rsplit("/", 1)[-1], {}).get("properties", {})
            kept = {n: answer_schema(sub, False, defs) for n, sub in nested.items() if sub.get("shown") is True}
            if kept:
                out["properties"] = kept
        elif key == "properties":
            out[key] = {name: answer_schema(sub, False, defs) for name, sub in value.items()}
        else:
            out[key] = answer_schema(value, False, defs)
    kind = out.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        out["type"] = rest[0] if len(rest) == 1 else rest
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        out = {**rest[0], **out} if len(rest) == 1 else {**out, "anyOf": rest}
    out.pop("required", None)  # answers omit unset fields, so nothing is promised to be present
    if not top:
        out.pop("type", None)
        for key in ("items", "additionalProperties"):
            if out.get(key) == {}:
                del out[key]
        if isinstance(out.get("anyOf"), list) and {} in out["anyOf"]:
            del out["anyOf"]  # one of the alternatives is any value: nothing is left to say
    return out


def compact_schema(schema: Any) -> Any:
    """The same JSON schema in fewer tokens: no generated titles, `null` folded into `type`, no null defaults."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other.get("type"), str) and "$ref" not in other:
            del out["anyOf"]
            out = {**other, **out, "type": [other["type"], "null"]}
    return out
