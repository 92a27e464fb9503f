"""Which mode each workflow should run in: over-served (fast and dear, with nobody waiting),
under-served (its mode's promise not kept), fine, or too little history to say.

Pure: `reporting/advice.py` reads the evidence out of the runs, this judges it and says what
changing the workflow would save or cost per month, with what risk, by which TOML line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum

from easyflow_cli.core.costs import Prices, run_cost
from easyflow_cli.core.forecast import Unit
from easyflow_cli.core.model import Mode
from easyflow_cli.core.words import plural

# Enough history to judge: this many runs, spread over this many days.
MIN_RUNS = 10
MIN_DAYS = 7.0
# Over-served: most of its runs are real-time or balanced, and nobody waited for nearly all.
SERVED_SHARE = 0.5
UNWATCHED_SHARE = 0.9
# ... and a deadline leaves room for eco "far beyond" its p90 plus the wait: this many times.
SLACK_FACTOR = 2.0
# Under-served: a mode's objective (start within, deadline, max_delay) met by fewer runs.
ATTAINMENT = 0.9
# The duration spread (p90 / p50) from which a deferred run's deadline is at medium, high risk.
SPREAD_MEDIUM = 1.3
SPREAD_HIGH = 2.0
DAYS_PER_MONTH = 30.0


class Verdict(StrEnum):
    OVER_SERVED = "over-served"
    UNDER_SERVED = "under-served"
    FINE = "fine"
    NOT_ENOUGH_HISTORY = "not enough history"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass
class ModeEvidence:
    """One mode's runs of a workflow over the period, as SQL added them up."""

    runs: int = 0
    waited: int = 0            # runs whose submitter followed them (`Run.followed`)
    cost: float = 0.0          # priced as they ran
    worker_s: float = 0.0
    cpu_s: float = 0.0
    energy_j: float = 0.0      # measured, over `measured` runs
    measured: int = 0
    deadlines: int = 0
    min_slack_s: float | None = None  # the least time between a run's submission and deadline
    judged: int = 0            # runs the objective could be judged on
    missed: int = 0            # ... that missed it
    pinned_by_schedule: int = 0  # runs whose mode their schedule's `mode` set
    pinned_by_hand: int = 0      # runs whose mode `run --now --mode` set

    @property
    def attainment(self) -> float | None:
        return None if not self.judged else 1 - self.missed / self.judged

    def plus(self, other: ModeEvidence) -> ModeEvidence:
        """Both together: counts and sums added, the least slack kept."""
        added = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                 if f.name != "min_slack_s"}
        slacks = [s for s in (self.min_slack_s, other.min_slack_s) if s is not None]
        return ModeEvidence(**added, min_slack_s=min(slacks) if slacks else None)


@dataclass
class Evidence:
    """A workflow's runs over a period: what the verdict rests on."""

    workflow: str
    days: float                # the period's length
    span_days: float           # from its first finished run to its last
    by_mode: dict[Mode, ModeEvidence]
    p50_s: float | None = None  # learned duration (core/learned.py)
    p90_s: float | None = None

    @property
    def runs(self) -> int:
        return sum(m.runs for m in self.by_mode.values())

    def mode(self, mode: Mode) -> ModeEvidence:
        return self.by_mode.get(mode, ModeEvidence())


@dataclass(frozen=True)
class Setting:
    """What the advice is judged and priced against (from the config and loaded series)."""

    prices: Prices
    watts_per_core: float
    eco_wait_s: float          # the longest an eco run waits for its cheap window
    eco_off_peak: bool         # eco runs are priced at the off-peak price
    workers: dict[Mode, int]
    config_file: str
    # gCO2/kWh that eco saves a run of this workflow (at once minus planned, mean over the
    # arrivals the carbon series covers); None without a series.
    carbon_shift_g_per_kwh: float | None = None
    carbon_source: str | None = None
    # The tariff's mean over a run of this workflow started at once and where eco starts it;
    # None without a tariff (the pools' prices then).
    tariff: TariffShift | None = None


@dataclass(frozen=True)
class TariffShift:
    unit: Unit                 # per kWh, or a multiplier on the pools' prices
    at_once: float
    planned: float


@dataclass(frozen=True)
class Change:
    file: str
    toml: str                  # the exact line(s) to set, under `table` if any
    table: str | None = None  # the table header the line goes under, if any


@dataclass
class Advice:
    workflow: str
    verdict: Verdict
    reason: str
    evidence: Evidence
    money_per_month: float | None = None  # saved (negative: what the change costs)
    carbon_g_per_month: float | None = None
    risk: Risk | None = None
    change: Change | None = None
    notes: list[str] = field(default_factory=list)


def advise(evidence: Evidence, setting: Setting, source_file: str | None) -> Advice:
    """The verdict on one workflow. A broken promise comes before a saving."""
    if evidence.runs < MIN_RUNS or evidence.span_days < MIN_DAYS:
        return Advice(evidence.workflow, Verdict.NOT_ENOUGH_HISTORY,
                      f"{plural(evidence.runs, 'run')} over {evidence.span_days:.1f} days; "
                      f"needs {MIN_RUNS} over {MIN_DAYS:.0f}", evidence)
    file = source_file or "its workflow file"
    for judge in (_eco_misses, _slow_start):
        advice = judge(evidence, setting, file)
        if advice is not None:
            return advice
    return _over_served(evidence, setting, file) or Advice(
        evidence.workflow, Verdict.FINE, _fine_reason(evidence), evidence)


def _per_month(evidence: Evidence, runs: int) -> float:
    return runs * DAYS_PER_MONTH / evidence.days if evidence.days > 0 else 0.0


def _cost_as(mode: Mode, past: ModeEvidence, setting: Setting) -> float:
    """What the runs of `past` would have cost in `mode`, started as that mode starts them: by
    the tariff where one is loaded, else the pools' prices (eco's off-peak where it waits)."""
    deferred = mode is Mode.ECO
    shift = setting.tariff
    if shift is None:
        return run_cost(setting.prices, mode, deferred and setting.eco_off_peak, past.worker_s,
                        past.cpu_s)
    mean = shift.planned if deferred else shift.at_once
    cpu_cost = past.cpu_s / 3600 * setting.prices.cpu_hour_price
    if shift.unit is Unit.MULTIPLIER:
        hour_price = setting.prices.worker_hour_price(mode, False)
        return mean * hour_price * past.worker_s / 3600 + cpu_cost
    return mean * _energy_kwh(past, setting.watts_per_core) * past.runs + cpu_cost


def _cost_now(mode: Mode, past: ModeEvidence, setting: Setting) -> float:
    """What its runs cost as they ran, or under a tariff, as `mode` would run them now."""
    return past.cost if setting.tariff is None else _cost_as(mode, past, setting)


def _energy_kwh(past: ModeEvidence, watts_per_core: float) -> float:
    """Per run: measured where it was, else the CPU-time estimate."""
    if past.measured:
        return past.energy_j / past.measured / 3.6e6
    return past.cpu_s / max(past.runs, 1) * watts_per_core / 3.6e6


def _carbon_saved(past: ModeEvidence, setting: Setting, per_month_runs: float) -> float | None:
    if setting.carbon_shift_g_per_kwh is None:
        return None
    return setting.carbon_shift_g_per_kwh * _energy_kwh(past, setting.watts_per_core) \
        * per_month_runs


def _served(evidence: Evidence) -> tuple[Mode, ModeEvidence]:
    """Its real-time and balanced runs together, under the mode most of them ran in."""
    fast, steady = evidence.mode(Mode.REAL_TIME), evidence.mode(Mode.BALANCED)
    return (Mode.REAL_TIME if fast.runs >= steady.runs else Mode.BALANCED), fast.plus(steady)


def _over_served(evidence: Evidence, setting: Setting, file: str) -> Advice | None:
    mode, served = _served(evidence)
    if served.runs < SERVED_SHARE * evidence.runs or served.runs == 0:
        return None
    unwatched = served.runs - served.waited
    if unwatched < UNWATCHED_SHARE * served.runs:
        return None
    p90 = evidence.p90_s if evidence.p90_s is not None else served.worker_s / served.runs
    needed = SLACK_FACTOR * (p90 + setting.eco_wait_s)
    if served.deadlines and (served.min_slack_s or 0.0) < needed:
        return None
    as_eco, as_ran = _cost_as(Mode.ECO, served, setting), _cost_now(mode, served, setting)
    if as_eco >= as_ran:
        return None
    runs_month = _per_month(evidence, served.runs)
    slack = ("no deadline" if served.min_slack_s is None else
             f"deadline slack ≥ {served.min_slack_s / 3600:.1f} h")
    return Advice(
        evidence.workflow, Verdict.OVER_SERVED,
        f"{served.runs} {mode.value} runs, {unwatched} with nobody waiting; {slack}",
        evidence, money_per_month=(as_ran - as_eco) / served.runs * runs_month,
        carbon_g_per_month=_carbon_saved(served, setting, runs_month),
        risk=_deferral_risk(evidence, served), change=_set_mode(served, file, Mode.ECO),
        notes=_pinned_by_hand(served))


def _set_mode(past: ModeEvidence, file: str, mode: Mode) -> Change:
    """The line that gives its runs `mode`, where their mode comes from: its schedules' `mode`
    wins over the workflow's `execution_mode`."""
    if past.pinned_by_schedule * 2 >= past.runs:
        return Change(file, f'mode = "{mode.value}"', table="[[schedules]]")
    return Change(file, f'execution_mode = "{mode.value}"')


def _pinned_by_hand(served: ModeEvidence) -> list[str]:
    if not served.pinned_by_hand:
        return []
    return [f"{plural(served.pinned_by_hand, 'run')} asked for their mode with --mode, which "
            "wins over the file: submit them without it"]


def _deferral_risk(evidence: Evidence, served: ModeEvidence) -> Risk:
    """The chance a deferred run misses its deadline, from how far its durations spread."""
    if not served.deadlines or not evidence.p50_s or evidence.p90_s is None:
        return Risk.LOW
    spread = evidence.p90_s / evidence.p50_s
    if spread >= SPREAD_HIGH:
        return Risk.HIGH
    return Risk.MEDIUM if spread >= SPREAD_MEDIUM else Risk.LOW


def _eco_misses(evidence: Evidence, setting: Setting, file: str) -> Advice | None:
    """Eco runs that finished after their deadline (or started past `max_delay`)."""
    eco = evidence.mode(Mode.ECO)
    if eco.attainment is None or eco.attainment >= ATTAINMENT:
        return None
    as_balanced = _cost_as(Mode.BALANCED, eco, setting)
    runs_month = _per_month(evidence, eco.runs)
    carbon = _carbon_saved(eco, setting, runs_month)
    return Advice(
        evidence.workflow, Verdict.UNDER_SERVED,
        f"{eco.missed} of {eco.judged} eco runs missed their deadline or max_delay",
        evidence, money_per_month=-(as_balanced - _cost_now(Mode.ECO, eco, setting)) / eco.runs
        * runs_month,
        carbon_g_per_month=None if carbon is None else -carbon, risk=Risk.LOW,
        change=_set_mode(eco, file, Mode.BALANCED))


def _slow_start(evidence: Evidence, setting: Setting, file: str) -> Advice | None:
    """Real-time or balanced runs that did not start within their mode's `start_within`."""
    for mode in (Mode.REAL_TIME, Mode.BALANCED):
        past = evidence.mode(mode)
        if past.attainment is None or past.attainment >= ATTAINMENT:
            continue
        reason = (f"{past.missed} of {past.judged} {mode.value} runs did not start within "
                  "their objective")
        if mode is Mode.BALANCED:
            as_fast = _cost_as(Mode.REAL_TIME, past, setting)
            return Advice(evidence.workflow, Verdict.UNDER_SERVED, reason, evidence,
                          money_per_month=-(as_fast - _cost_now(mode, past, setting)) / past.runs
                          * _per_month(evidence, past.runs),
                          carbon_g_per_month=_unchanged_carbon(setting), risk=Risk.LOW,
                          change=_set_mode(past, file, Mode.REAL_TIME))
        # A run pays for the worker time it occupies: a worker more costs no run anything.
        return Advice(evidence.workflow, Verdict.UNDER_SERVED, reason, evidence,
                      money_per_month=0.0, carbon_g_per_month=_unchanged_carbon(setting),
                      risk=Risk.LOW,
                      change=Change(setting.config_file,
                                    f"workers = {setting.workers[Mode.REAL_TIME] + 1}",
                                    table="[pools.real-time]"),
                      notes=["real-time runs queued behind each other: one more worker"])
    return None


def _unchanged_carbon(setting: Setting) -> float | None:
    """A change that does not move runs in time changes no gram (none known without a series)."""
    return None if setting.carbon_shift_g_per_kwh is None else 0.0


def _fine_reason(evidence: Evidence) -> str:
    _, served = _served(evidence)
    if served.runs and served.waited > (1 - UNWATCHED_SHARE) * served.runs:
        return f"{served.waited} of {served.runs} real-time/balanced runs had someone waiting"
    if served.deadlines and served.runs:
        return "its deadlines leave too little room to wait for cheaper hours"
    return "its runs meet their mode's objective at the price of their mode"
