"""Fault injection: parse `KIND[=ARG][@after]:RATE[:PATH_REGEX]` rules and decide, reproducibly,
which requests they hit. See sandbox/README.md for the syntax and semantics."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field

KINDS = ("latency", "429", "500", "503", "timeout", "drop", "409", "403")
AFTER_KINDS = ("500", "503", "timeout", "drop")
DEFAULT_ARG = {"latency": 200.0, "429": 1.0, "timeout": 30.0}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FaultSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class FaultRule:
    kind: str  # one of KINDS
    rate: float  # 0..1
    path: re.Pattern[str] | None = None  # searched in the request path
    arg: float | None = None  # latency ms, 429 Retry-After seconds, timeout seconds
    after: bool = False  # writes only: perform the write, then fail

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        parts = text.strip().split(":", 2)
        if len(parts) < 2:
            raise FaultSyntaxError(f"fault {text!r}: expected KIND[=ARG][@after]:RATE[:PATH_REGEX]")
        head, rate_text = parts[0], parts[1]
        after = head.endswith("@after")
        head = head.removesuffix("@after")
        kind, _, arg_text = head.partition("=")
        if kind not in KINDS:
            raise FaultSyntaxError(f"fault {text!r}: kind must be one of {', '.join(KINDS)}")
        if after and kind not in AFTER_KINDS:
            raise FaultSyntaxError(f"fault {text!r}: @after applies to {', '.join(AFTER_KINDS)} only")
        try:
            rate = float(rate_text)
            arg = float(arg_text) if arg_text else DEFAULT_ARG.get(kind)
        except ValueError as exc:
            raise FaultSyntaxError(f"fault {text!r}: {exc}") from None
        if not 0 <= rate <= 1:
            raise FaultSyntaxError(f"fault {text!r}: rate must be between 0 and 1")
        try:
            path = re.compile(parts[2]) if len(parts) == 3 and parts[2] else None
        except re.error as exc:
            raise FaultSyntaxError(f"fault {text!r}: bad path regex: {exc}") from None
        return cls(kind, rate, path, arg, after)

    def applies(self, method: str, path: str) -> bool:
        is_write = method in WRITE_METHODS
        if (self.kind == "409" or self.after) and not is_write:
            return False
        return self.path is None or self.path.search(path) is not None

    @property
    def label(self) -> str:
        return self.kind + ("@after" if self.after else "")


@dataclass(frozen=True)
class Fault:
    """What to do to one request: add `latency_ms`, then fail with `rule` (if any)."""

    latency_ms: float = 0.0
    rule: FaultRule | None = None


@dataclass
class FaultPlan:
    """An ordered list of rules. The n-th request a rule applies to is hit when
    sha256(seed, rule index, kind, n) maps below its rate: same seed, same requests."""

    rules: list[FaultRule]
    seed: int = 1
    _counters: list[int] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._counters = [0] * len(self.rules)

    @classmethod
    def parse(cls, specs: list[str], seed: int = 1) -> FaultPlan:
        """Rules from flag values; each may hold several comma-separated rules (as SANDBOX_FAULTS does)."""
        rules = [FaultRule.parse(item) for spec in specs for item in spec.split(",") if item.strip()]
        return cls(rules, seed)

    def roll(self, index: int, n: int) -> float:
        rule = self.rules[index]
        digest = hashlib.sha256(f"{self.seed}:{index}:{rule.label}:{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def decide(self, method: str, path: str) -> Fault:
        """Advance every applicable rule's counter; latency adds up, the first failure wins."""
        latency, chosen = 0.0, None
        with self._lock:
            for index, rule in enumerate(self.rules):
                if not rule.applies(method, path):
                    continue
                n = self._counters[index]
                self._counters[index] += 1
                if self.roll(index, n) >= rule.rate:
                    continue
                if rule.kind == "latency":
                    latency += rule.arg or 0.0
                elif chosen is None:
                    chosen = rule
        return Fault(latency, chosen)
