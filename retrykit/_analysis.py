"""
Analysis of the error statistics: figures, plain-language suggestions, threshold alerts.

Everything here is computed from counters, so the same analysis works on this process's counts
and on the fleet's (Redis), and on constructed histories in tests.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from . import _stats
from ._classify import ErrorCategory
from ._errors import ConfigError
from ._overload import overload_states

MIN_SAMPLES = 20
"""Rates from fewer samples than this are reported but not turned into suggestions."""


def _rate(ok: int, failed: int) -> float | None:
    total = ok + failed
    return None if total == 0 else ok / total


@dataclass(frozen=True)
class OperationFigures:
    """
    One operation's totals in the analysed window.

    Attributes:
        errors: Failed attempts.
        retries: Retries scheduled.
        gave_up: Calls that gave up.
        late_successes: Calls that succeeded after failing at least once.
    """

    errors: int
    retries: int
    gave_up: int
    late_successes: int


@dataclass(frozen=True)
class Analysis:
    """
    What the statistics say about a window of time: ``analyze()``'s result.

    ``retrykit analyze`` prints one; ``to_dict()`` gives the JSON document of ``--json``.

    Attributes:
        operation: The operation analysed, or ``None`` for every operation.
        since: The window's start (a Unix timestamp).
        until: The window's end (a Unix timestamp).
        source: Where the counts came from: ``"memory"`` (this process) or ``"redis"`` (every
            worker).
        total_errors: Failed attempts.
        calls_with_errors: Calls whose first attempt failed.
        retries: Retries scheduled.
        late_successes: Calls that succeeded after failing at least once.
        gave_up: Calls that gave up.
        waited_seconds: Time spent waiting between attempts, by the policies' delays.
        category_distribution: Failed attempts by category.
        give_up_reasons: Give-ups by ``StopReason`` value.
        retry_success_rate: How often a retry succeeded (the attempt right after a retry), or
            ``None`` without retries.
        retry_success_by_category: The same, keyed by the category of the failure retried.
        retry_success_by_attempt: The same, keyed by the attempt number of the retry (10 stands
            for 10 and later).
        retry_samples_by_attempt: The retries behind each rate of ``retry_success_by_attempt``.
        operations: Each operation's totals.
        rule_failures: Classifier rules that raised, by rule name.
        sink_failures: Failures of event sinks, keyed ``"<sink>:<error type>"``.
        overflowed: Counts of operation names beyond ``stats_max_operations``, counted as
            ``<other>``.
        suggestions: Sentences about patterns in the figures (from 20 failures on): data errors
            retried, retries that rarely help, rate limits dominating, ...
        budgets: Retry budgets this process uses, by key: shape, spent, refused, balance, store.
        breakers: Circuit breakers this process uses, by key: state, seconds left open, rejected
            calls, store.
        unrecognised: Failures no rule or signal recognised, by exception type
            (``module.Class``): what a rule of yours should name.
    """

    operation: str | None
    since: float
    until: float
    source: str
    """Where the counts came from: ``"memory"`` (this process) or ``"redis"`` (every worker)."""
    total_errors: int
    """Failed attempts."""
    calls_with_errors: int
    """Calls whose first attempt failed."""
    retries: int
    late_successes: int
    """Calls that succeeded after failing at least once."""
    gave_up: int
    waited_seconds: float
    category_distribution: dict[str, int]
    give_up_reasons: dict[str, int]
    retry_success_rate: float | None
    """How often a retry succeeded (the attempt right after a retry), or None without retries."""
    retry_success_by_category: dict[str, float | None]
    """Keyed by the category of the failure that was retried."""
    retry_success_by_attempt: dict[int, float | None]
    """Keyed by the attempt number of the retry (10 stands for 10 and later)."""
    retry_samples_by_attempt: dict[int, int]
    operations: dict[str, OperationFigures]
    rule_failures: dict[str, int]
    sink_failures: dict[str, int] = field(default_factory=dict)
    """Failures of event sinks, keyed ``"<sink>:<error type>"`` (each logged once a minute)."""
    overflowed: int = 0
    """Counts of operation names beyond the cap (``stats_max_operations``), counted as ``<other>``."""
    suggestions: list[str] = field(default_factory=list)
    unrecognised: dict[str, int] = field(default_factory=dict)
    """Failures no rule or signal recognised, by exception type (retried at most once each)."""
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Retry budgets this process uses, by key: shape, spent, refused (exhaustion), balance, store."""
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Circuit breakers this process uses, by key: state, seconds left open, rejected calls, store."""

    def to_dict(self) -> dict[str, Any]:
        """
        A JSON-ready dict of every field.

        Returns:
            The dict (attempt-number keys as strings).
        """
        data = asdict(self)
        data["retry_success_by_attempt"] = {str(k): v for k, v in self.retry_success_by_attempt.items()}
        data["retry_samples_by_attempt"] = {str(k): v for k, v in self.retry_samples_by_attempt.items()}
        return data


def _window(
    since: float | timedelta | None, until: float | None, clock: Callable[[], float]
) -> tuple[float, float]:
    now = clock()
    end = now if until is None else float(until)
    if since is None:
        start = end - 24 * 3600
    elif isinstance(since, timedelta):
        start = end - since.total_seconds()
    elif isinstance(since, (int, float)) and not isinstance(since, bool) and math.isfinite(since):
        start = end - since if 0 <= since < 1e9 else float(since)
    else:
        raise ConfigError(
            "since",
            since,
            "must be seconds back, a timestamp or a timedelta",
            "pass e.g. since=3600 (the last hour)",
        )
    return start, end


@dataclass
class _Tally:
    """The counters of a window, summed by kind: what ``from_counts`` reads its figures from."""

    categories: Counter[str] = field(default_factory=Counter[str])
    reasons: Counter[str] = field(default_factory=Counter[str])
    ok_by_cat: Counter[str] = field(default_factory=Counter[str])
    failed_by_cat: Counter[str] = field(default_factory=Counter[str])
    ok_by_n: Counter[int] = field(default_factory=Counter[int])
    failed_by_n: Counter[int] = field(default_factory=Counter[int])
    retries: int = 0
    gave_up: int = 0
    waited_ms: int = 0

    def add(self, name: str, value: int) -> None:
        """Count *value* under the counter *name* (``kind:rest``)."""
        kind, _, rest = name.partition(":")
        if kind == "failed":
            self.categories[rest] += value
        elif kind == "retried":
            self.retries += value
        elif kind == "waited_ms":
            self.waited_ms += value
        elif kind == "gave_up":
            self.gave_up += value
            self.reasons[rest.partition(":")[2]] += value
        elif kind in ("retry_ok", "retry_failed"):
            cat, _, n_text = rest.partition(":")
            ok = kind == "retry_ok"
            (self.ok_by_cat if ok else self.failed_by_cat)[cat] += value
            (self.ok_by_n if ok else self.failed_by_n)[int(n_text)] += value

    def rates(self) -> dict[str, Any]:
        """The retry success rates: overall, by category, by attempt, and their samples."""
        ok_by_n, failed_by_n = self.ok_by_n, self.failed_by_n
        attempts = sorted(set(ok_by_n) | set(failed_by_n))
        cats = sorted(set(self.ok_by_cat) | set(self.failed_by_cat))
        return {
            "retry_success_rate": _rate(sum(ok_by_n.values()), sum(failed_by_n.values())),
            "retry_success_by_category": {c: _rate(self.ok_by_cat[c], self.failed_by_cat[c]) for c in cats},
            "retry_success_by_attempt": {n: _rate(ok_by_n[n], failed_by_n[n]) for n in attempts},
            "retry_samples_by_attempt": {n: ok_by_n[n] + failed_by_n[n] for n in attempts},
        }


def _operation_figures(counts: Counter[str]) -> OperationFigures:
    """One operation's totals from its counters."""
    return OperationFigures(
        errors=sum(v for k, v in counts.items() if k.startswith("failed:")),
        retries=sum(v for k, v in counts.items() if k.startswith("retried:")),
        gave_up=sum(v for k, v in counts.items() if k.startswith("gave_up:")),
        late_successes=counts.get("succeeded", 0),
    )


def _after_colon(counts: Counter[str], prefix: str = "") -> dict[str, int]:
    """The counters starting with *prefix*, keyed by what follows their first colon, non-zero."""
    return {k.partition(":")[2]: v for k, v in counts.items() if v and k.startswith(prefix)}


def from_counts(
    counts: Mapping[str, Counter[str]],
    *,
    operation: str | None,
    since: float,
    until: float,
    source: str,
    overload: tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] | None = None,
) -> Analysis:
    """
    Build the analysis of per-operation *counts*, with the budgets and breakers *overload*
    (those this process has used if None).
    """
    special = (_stats.CLASSIFIER, _stats.SINKS)
    total: Counter[str] = _stats.merge(c for op, c in counts.items() if op not in special)
    tally = _Tally()
    for name, value in total.items():
        tally.add(name, value)
    budgets, breakers = overload_states() if overload is None else overload
    analysis = Analysis(
        operation=operation,
        since=since,
        until=until,
        source=source,
        total_errors=sum(tally.categories.values()),
        calls_with_errors=total.get("first_failed", 0),
        retries=tally.retries,
        late_successes=total.get("succeeded", 0),
        gave_up=tally.gave_up,
        waited_seconds=tally.waited_ms / 1000,
        category_distribution=dict(tally.categories.most_common()),
        give_up_reasons=dict(tally.reasons.most_common()),
        **tally.rates(),
        operations={op: _operation_figures(c) for op, c in sorted(counts.items()) if op not in special},
        rule_failures=_after_colon(counts.get(_stats.CLASSIFIER, Counter())),
        sink_failures=_after_colon(counts.get(_stats.SINKS, Counter())),
        overflowed=total.get(_stats.OVERFLOWED, 0),
        budgets=budgets,
        breakers=breakers,
        unrecognised=dict(Counter(_after_colon(total, "unrecognised:")).most_common()),
    )
    return _with_suggestions(analysis, total)


def _repeating(a: Analysis, total: Counter[str]) -> Iterator[str]:
    """Data and permanent failures that were retried: they repeat on retry."""
    for cat in (ErrorCategory.DATA_ERROR.value, ErrorCategory.PERMANENT_ERROR.value):
        retried = total.get(f"retried:{cat}", 0)
        if retried:
            yield (
                f"{cat} failures were retried {retried} times; they repeat on retry. Map "
                f"{cat.upper()} to Strategy.no_retry() (the presets do)."
            )


def _late_attempts(a: Analysis, total: Counter[str]) -> Iterator[str]:
    """Retries that almost never succeed from some attempt on."""
    for n in sorted(a.retry_success_by_attempt):
        later = [m for m in a.retry_success_by_attempt if m >= n]
        samples = sum(a.retry_samples_by_attempt[m] for m in later)
        ok = sum(round((a.retry_success_by_attempt[m] or 0) * a.retry_samples_by_attempt[m]) for m in later)
        if n > 2 and samples >= MIN_SAMPLES and ok / samples < 0.05:
            yield (
                f"Retries from attempt {n} on succeeded {ok} of {samples} times "
                f"({ok / samples:.0%}); cap max_attempts at {n - 1} and fail sooner."
            )
            return


def _mix(a: Analysis, total: Counter[str]) -> Iterator[str]:
    """Rate limits or permanent errors dominating the failures; one operation the retries."""
    if a.total_errors >= MIN_SAMPLES:
        rate_limited = a.category_distribution.get(ErrorCategory.API_RATE_LIMIT.value, 0)
        if rate_limited / a.total_errors > 0.5:
            yield (
                f"Rate limits are {rate_limited / a.total_errors:.0%} of failures: slow the callers "
                "down (a client-side rate limit or fewer workers) rather than retrying harder."
            )
        permanent = a.category_distribution.get(ErrorCategory.PERMANENT_ERROR.value, 0)
        if permanent / a.total_errors > 0.2:
            yield (
                f"{permanent} permanent errors ({permanent / a.total_errors:.0%}): these are bugs or "
                "refusals (401/403/404, TypeError); retrying cannot fix them, the code or credentials must."
            )
    if a.retries >= MIN_SAMPLES and len(a.operations) > 1:
        top, figures = max(a.operations.items(), key=lambda kv: kv[1].retries)
        if figures.retries / a.retries > 0.5:
            yield (
                f"{top} accounts for {figures.retries} of {a.retries} retries "
                f"({figures.retries / a.retries:.0%}): look for a retry loop or a failing dependency there."
            )


_OVERLOAD_ADVICE = (
    "the dependency is failing for everyone; alert on it, add a circuit breaker, or (if the "
    "failures are isolated) raise the budget's ratio."
)


def _overload(a: Analysis, total: Counter[str]) -> Iterator[str]:
    """Budgets that refused often (by key, else from the give-ups), open breakers."""
    named = False  # budgets exhausted often, by key (the fleet's counts for those in Redis)
    for key, state in a.budgets.items():
        refused, spent = state.get("refused", 0), state.get("spent", 0)
        if refused >= MIN_SAMPLES and refused / (refused + spent) > 0.2:
            named = True
            yield (
                f"The retry budget {key!r} refused {refused} of {refused + spent} retries "
                f"({refused / (refused + spent):.0%}): {_OVERLOAD_ADVICE}"
            )
    exhausted = a.give_up_reasons.get("budget_exhausted", 0)
    if not named and a.gave_up >= MIN_SAMPLES and exhausted / a.gave_up > 0.2:
        yield f"{exhausted} of {a.gave_up} give-ups were refused by the retry budget: {_OVERLOAD_ADVICE}"
    for key, state in a.breakers.items():
        if state.get("state") == "open":
            yield (
                f"The circuit breaker {key!r} is open ({state.get('rejected', 0)} calls refused): "
                "its dependency is failing; check it before raising the breaker's thresholds."
            )


def _outcomes(a: Analysis, total: Counter[str]) -> Iterator[str]:
    """Give-ups at the deadline; retries that rarely succeed."""
    deadline = a.give_up_reasons.get("deadline", 0) + a.give_up_reasons.get("retry_after_exceeds_deadline", 0)
    if a.gave_up >= MIN_SAMPLES and deadline / a.gave_up > 0.5:
        yield f"{deadline} of {a.gave_up} give-ups hit the deadline: raise the deadline or shorten the waits."
    if a.retry_success_rate is not None and a.retries >= MIN_SAMPLES and a.retry_success_rate < 0.2:
        yield (
            f"Only {a.retry_success_rate:.0%} of retries succeeded: the failures are not transient; "
            "retry less and alert sooner."
        )


def _rules(a: Analysis, total: Counter[str]) -> Iterator[str]:
    """The rules to paste for unrecognised failures; rules that raised."""
    temporary = a.retry_success_by_category.get(ErrorCategory.TEMPORARY_ERROR.value)
    for name, count in list(a.unrecognised.items())[:3]:
        yield _rule_for(name, count, temporary)
    if a.rule_failures:
        yield (
            f"Classifier rules raised {sum(a.rule_failures.values())} times "
            f"({', '.join(a.rule_failures)}): fix them; failures they should have caught got the next rule."
        )


_SUGGESTERS = (_repeating, _late_attempts, _mix, _overload, _outcomes, _rules)
"""What the suggestions look at, in the order they are given."""


def _with_suggestions(a: Analysis, total: Counter[str]) -> Analysis:
    """*a* with the suggestions its figures (and the window's counters *total*) call for."""
    tips = [tip for suggest in _SUGGESTERS for tip in suggest(a, total)]
    return Analysis(**{**a.__dict__, "suggestions": tips})


def _rule_for(name: str, count: int, temporary_success: float | None) -> str:
    """A suggestion for an unrecognised exception type, with the rule to paste."""
    if name == _stats.OTHER:
        return (
            f"{count} failures of more unrecognised types than are counted by name: run "
            "retrykit.explain(exc) on them and add rules saying what they are."
        )
    module = name.rpartition(".")[0]
    # A retry of temporary failures that mostly succeeds suggests these pass too; else they repeat.
    passes = temporary_success is not None and temporary_success >= 0.5
    category = "temporary_error" if passes else "permanent_error"
    imports = f"import {module}; " if module else ""
    return (
        f"{count} failures of {name} matched no rule or signal and were retried at most once each: say "
        f"what they are ({category} is a guess from how often retries succeeded), e.g. {imports}"
        f'Policy(classifier=retrykit.Classifier([retrykit.Rule("{category}", types={name})]))'
    )


def analyze(
    name: str | None = None,
    since: float | timedelta | None = None,
    until: float | None = None,
    *,
    recorder: _stats.StatsRecorder | None = None,
) -> Analysis:
    """
    Analyse the error statistics of an operation, or of every one, over a window of time.

    With ``stats_redis_url`` configured, the figures are every worker's.

    Args:
        name: The operation (a function's qualified name, a task's name). Default: every one.
        since: Seconds back from *until* (24 h by default), a Unix timestamp, or a
            ``timedelta``.
        until: The window's end, a Unix timestamp. Default: now.
        recorder: The statistics to read. Default: the process's.

    Returns:
        The analysis.

    Raises:
        ConfigError: A *since* that is neither seconds, a timestamp nor a timedelta.
    """
    rec = recorder or _stats.recorder()
    start, end = _window(since, until, rec.local.clock)
    counts, source = rec.read(name, start, end)
    return from_counts(counts, operation=name, since=start, until=end, source=source)


def error_statistics(name: str | None = None, since: float | timedelta | None = None) -> dict[str, Any]:
    """
    The analysis of ``analyze(name, since)`` as a plain, JSON-ready dict.

    Args:
        name: The operation. Default: every one.
        since: Seconds back from now (24 h by default), a Unix timestamp, or a ``timedelta``.

    Returns:
        ``Analysis.to_dict()`` of that analysis.
    """
    return analyze(name, since).to_dict()


def cleanup_old_errors(hours: float = 24) -> int:
    """
    Drop statistics older than *hours*: in this process and, with ``stats_redis_url``, in Redis.

    Args:
        hours: The age beyond which buckets are dropped.

    Returns:
        How many buckets were dropped.

    Raises:
        ConfigError: A negative number of hours.
    """
    if not isinstance(hours, (int, float)) or isinstance(hours, bool) or hours < 0:
        raise ConfigError("hours", hours, "must be a number of hours >= 0", "pass e.g. hours=24")
    return _stats.recorder().cleanup(hours)


@dataclass(frozen=True)
class Alert:
    """
    A threshold crossed: what, by how much, and a sentence for a pager.

    Attributes:
        kind: What crossed its threshold: ``"total_errors"``, ``"category:<name>"`` or
            ``"retry_success_rate"``.
        value: The figure measured.
        threshold: The threshold it crossed.
        message: A sentence saying so.
    """

    kind: str
    value: float
    threshold: float
    message: str


@dataclass(frozen=True)
class Thresholds:
    """
    When ``monitor()`` alerts.

    Args:
        total_errors: Alert above this many failed attempts.
        categories: Alert above ``categories[c]`` failures of category *c* (keys are
            ``ErrorCategory`` members or their values).
        min_retry_success_rate: Alert when the retry success rate falls under this (0 to 1).
        min_samples: The retries needed before the success rate is judged.

    Raises:
        ConfigError: A negative count, an unknown category or a rate outside 0 to 1.
    """

    total_errors: int | None = None
    categories: Mapping[str, int] = field(default_factory=dict)
    min_retry_success_rate: float | None = None
    min_samples: int = MIN_SAMPLES

    def __post_init__(self) -> None:
        if self.total_errors is not None and (
            not isinstance(self.total_errors, int) or self.total_errors < 0
        ):
            raise ConfigError("total_errors", self.total_errors, "must be a whole number >= 0", "e.g. 100")
        cats = {ErrorCategory.parse(k, "categories").value: v for k, v in self.categories.items()}
        for key, value in cats.items():
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"categories[{key!r}]", value, "must be a whole number >= 0", "e.g. 10")
        object.__setattr__(self, "categories", cats)
        rate = self.min_retry_success_rate
        if rate is not None and not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
            raise ConfigError("min_retry_success_rate", rate, "must be between 0 and 1", "e.g. 0.5")

    def check(self, analysis: Analysis) -> list[Alert]:
        """The alerts *analysis* raises."""
        alerts = []
        scope = analysis.operation or "all operations"
        if self.total_errors is not None and analysis.total_errors > self.total_errors:
            alerts.append(
                Alert(
                    "total_errors",
                    analysis.total_errors,
                    self.total_errors,
                    f"{analysis.total_errors} failed attempts in {scope} (threshold {self.total_errors})",
                )
            )
        for cat, limit in self.categories.items():
            seen = analysis.category_distribution.get(cat, 0)
            if seen > limit:
                alerts.append(
                    Alert(
                        f"category:{cat}",
                        seen,
                        limit,
                        f"{seen} {cat} failures in {scope} (threshold {limit})",
                    )
                )
        rate = analysis.retry_success_rate
        if (
            self.min_retry_success_rate is not None
            and rate is not None
            and analysis.retries >= self.min_samples
            and rate < self.min_retry_success_rate
        ):
            alerts.append(
                Alert(
                    "retry_success_rate",
                    rate,
                    self.min_retry_success_rate,
                    f"retries in {scope} succeed {rate:.0%} of the time "
                    f"(threshold {self.min_retry_success_rate:.0%})",
                )
            )
        return alerts


def monitor(
    thresholds: Thresholds,
    on_alert: Callable[[Alert], Any] | None = None,
    *,
    name: str | None = None,
    since: float | timedelta = 3600,
) -> list[Alert]:
    """
    Analyse the last *since* seconds and pass each alert to *on_alert*.

    Args:
        thresholds: When to alert.
        on_alert: Called with each ``Alert``. Default: log it as a warning.
        name: The operation. Default: every one.
        since: Seconds back from now, or a ``timedelta``.

    Returns:
        The alerts raised.
    """
    alerts = thresholds.check(analyze(name, since))
    for alert in alerts:
        if on_alert is None:
            _stats._log.warning("retrykit alert: %s", alert.message)
        else:
            on_alert(alert)
    return alerts


# --------------------------------------------------------------------------- human form


def fmt_seconds(value: float) -> str:
    """A short human duration: 0.2s, 5s, 1m30s, 2h, 1d."""
    if value < 10 and value != int(value):
        return f"{value:.3g}s"
    seconds = round(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            return f"{whole}{unit}" + (fmt_seconds(rest) if rest else "")
    return f"{seconds}s"


def render_analysis(a: Analysis, out: TextIO) -> None:
    """The human form of an ``Analysis``."""
    for render in (_figure_lines, _overload_lines, _suggestion_lines):
        for line in render(a):
            print(line, file=out)


def _figure_lines(a: Analysis) -> Iterator[str]:
    """The window, the totals, the categories, the reasons, the success rates, the operations."""
    window = fmt_seconds(a.until - a.since)
    yield f"analysis of {a.operation or 'all operations'} over the last {window} (source: {a.source})"
    yield (
        f"  failed attempts   {a.total_errors} in {a.calls_with_errors} calls; {a.retries} retries, "
        f"{a.late_successes} late successes, {a.gave_up} gave up; {fmt_seconds(a.waited_seconds)} waited"
    )
    yield "  categories        " + (", ".join(f"{k} {v}" for k, v in a.category_distribution.items()) or "-")
    yield "  give-up reasons   " + (", ".join(f"{k} {v}" for k, v in a.give_up_reasons.items()) or "-")
    if a.retry_success_rate is None:
        yield "  retry success     no retries"
    else:
        by_cat = ", ".join(f"{k} {v:.0%}" for k, v in a.retry_success_by_category.items() if v is not None)
        by_n = ", ".join(
            f"#{n} {v:.0%} of {a.retry_samples_by_attempt[n]}"
            for n, v in a.retry_success_by_attempt.items()
            if v is not None
        )
        yield f"  retry success     {a.retry_success_rate:.0%} overall"
        yield f"  by category       {by_cat or '-'}"
        yield f"  by attempt        {by_n}"
    if len(a.operations) > 1:
        yield "  operations"
        for op, f in a.operations.items():
            yield f"    {op:<30} {f.errors} errors, {f.retries} retries, {f.gave_up} gave up"


def _overload_lines(a: Analysis) -> Iterator[str]:
    """Sink failures, name overflow, each budget and breaker."""
    yield "  sink failures     " + (", ".join(f"{k} {v}" for k, v in a.sink_failures.items()) or "none")
    if a.overflowed:
        yield (
            f"  name overflow     {a.overflowed} counts of operation names beyond the cap "
            "(stats_max_operations) were counted as <other>"
        )
    for key, b in a.budgets.items():
        line = f"{key} ({b.get('shape')}): {b.get('spent', 0)} retries spent, {b.get('refused', 0)} refused"
        if "balance" in b:
            line += f", balance {b['balance']:.1f}" + (" (exhausted)" if b["balance"] < 1 else "")
        if "reject_probability" in b:
            line += f", refusing {b['reject_probability']:.0%} now"
        yield f"  retry budget      {line}{_where(b)}"
    for key, b in a.breakers.items():
        state = b.get("state", "?")
        left = f" for {fmt_seconds(b['remaining'])}" if state != "closed" and b.get("remaining") else ""
        counts = (  # an open breaker has forgotten its window: what it refused says more
            f"{b.get('failures', 0):g} failures and {b.get('successes', 0):g} successes in its window, "
            if state == "closed"
            else ""
        )
        refused = f"{b.get('rejected', 0)} calls refused"
        yield f"  circuit breaker   {key}: {state}{left}, {counts}{refused}{_where(b)}"


def _suggestion_lines(a: Analysis) -> Iterator[str]:
    """The suggestions, or why there are none."""
    none = "       none"
    if not a.suggestions and a.total_errors < MIN_SAMPLES:
        none += f" (patterns are judged from {MIN_SAMPLES} failures on; this window has {a.total_errors})"
    yield "  suggestions" + ("" if a.suggestions else none)
    for tip in a.suggestions:
        yield f"    - {tip}"


def _where(state: Mapping[str, Any]) -> str:
    if "error" in state:
        return f" (unreadable: {state['error']})"
    return f" [{state['store']}]" if state.get("store") not in (None, "memory") else ""
