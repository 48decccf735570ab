"""The pricing table: USD per million tokens per model, and token -> dollar conversion.

Room: costs. Reads the shipped ``pricing.toml``, the user's pricing file and the mission's
``[pricing]`` overrides; touches nothing else.

A model that has no price is an error (``check_models`` at validation time,
:class:`UnknownModel` at cost time), never a silent $0: a missing price would make every
budget check pass.

Each price row lists the Anthropic API ids it covers (``api_ids``: the dated snapshot and
its alias or ``-latest`` form) and the model's ``max_output_tokens``. A cost resolves any
spelling (row name, ``[aliases]``, API id); :func:`mission_pricing_problems` refuses, for
the anthropic backend, a model that is not an API id and a ``max_tokens`` above the model's
output limit (or above its output-tokens-per-minute limit, which would stall every call).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hybrid_tui.spec.loader import Problem
from hybrid_tui.spec.models import ModelLimits, SisTask, Usage

PER_MILLION = 1_000_000
USER_PRICING_PATH = Path("~/.config/hybrid-tui/pricing.toml")
PRICE_FIELDS = ("input", "output", "cache_write", "cache_read")
MODEL_FIELDS = ("api_ids", "max_output_tokens")  # what a row says besides its prices
API_BACKEND = "anthropic"  # the backend that sends model ids to the Anthropic API


class PricingError(ValueError):
    """A pricing file or override that cannot be used (unknown field, negative price, bad TOML)."""


class UnknownModel(LookupError):
    """A model with no price in the table."""

    def __init__(self, model: str):
        self.model = model
        super().__init__(
            f"unknown model {model!r}: no price in the pricing table "
            f'(add [pricing."{model}"] input = ..., output = ... to mission.toml)'
        )

    def __str__(self) -> str:  # LookupError would print the repr of the message
        return self.args[0]


class Pricing(BaseModel):
    """List prices of one model, USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float = Field(ge=0, description="5-minute cache write")
    cache_read: float = Field(ge=0, description="cache hit / refresh")

    def cost(self, usage: Usage, *, batch: bool = False, batch_discount: float = 0.5) -> float:
        dollars = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_tokens * self.cache_write
            + usage.cache_read_tokens * self.cache_read
        ) / PER_MILLION
        return dollars * (1.0 - batch_discount) if batch else dollars


class _PricingFile(BaseModel):
    """The layout shared by the shipped file and the user's file."""

    model_config = ConfigDict(extra="forbid")

    batch_discount: float | None = Field(default=None, ge=0, le=1)
    cache_write_multiplier: float | None = Field(default=None, ge=0)
    cache_read_multiplier: float | None = Field(default=None, ge=0)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)


class _ModelFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_ids: list[str] | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


class PricingTable:
    """Prices per model plus aliases; build it with :meth:`load`."""

    def __init__(
        self,
        prices: Mapping[str, Pricing],
        aliases: Mapping[str, str] | None = None,
        *,
        batch_discount: float = 0.5,
        cache_write_multiplier: float = 1.25,
        cache_read_multiplier: float = 0.1,
    ):
        self.prices: dict[str, Pricing] = dict(prices)
        self.aliases: dict[str, str] = dict(aliases or {})
        self.api_ids: dict[str, str] = {}  # Anthropic API id -> price row
        self.max_output_tokens: dict[str, int] = {}  # price row -> the model's output limit
        self.batch_discount = batch_discount
        self.cache_write_multiplier = cache_write_multiplier
        self.cache_read_multiplier = cache_read_multiplier

    # -- building ---------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        mission_overrides: Mapping[str, Mapping[str, float]] | None = None,
        user_config: Path | None = None,
    ) -> "PricingTable":
        """Shipped prices, then the user's file (if it exists), then the mission's overrides.

        ``user_config`` defaults to ``~/.config/hybrid-tui/pricing.toml``; pass a path that
        does not exist to ignore the user's file. ``mission_overrides`` is
        ``MissionFile.pricing`` (model -> {input, output, cache_write, cache_read}).
        """
        shipped = resources.files("hybrid_tui.costs").joinpath("pricing.toml").read_text("utf-8")
        table = cls({})
        table._merge_file(tomllib.loads(shipped), "hybrid_tui/costs/pricing.toml")
        user_path = (user_config or USER_PRICING_PATH).expanduser()
        if user_path.is_file():
            try:
                data = tomllib.loads(user_path.read_text("utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise PricingError(f"{user_path}: {exc}") from None
            table._merge_file(data, str(user_path))
        if mission_overrides:
            table._merge_models(mission_overrides, "mission.toml:pricing")
        return table

    def _merge_file(self, data: dict[str, Any], source: str) -> None:
        try:
            parsed = _PricingFile.model_validate(data)
        except ValidationError as exc:
            raise PricingError(f"{source}: {_first_error(exc)}") from None
        if parsed.batch_discount is not None:
            self.batch_discount = parsed.batch_discount
        if parsed.cache_write_multiplier is not None:
            self.cache_write_multiplier = parsed.cache_write_multiplier
        if parsed.cache_read_multiplier is not None:
            self.cache_read_multiplier = parsed.cache_read_multiplier
        self._merge_models(parsed.models, f"{source}:models")
        for alias, target in parsed.aliases.items():
            self.aliases[alias] = target
        for alias, target in self.aliases.items():
            if target not in self.prices:
                raise PricingError(f"{source}:aliases.{alias}: points at unknown model {target!r}")

    def _merge_models(self, models: Mapping[str, Mapping[str, Any]], source: str) -> None:
        for name, row in models.items():
            if not isinstance(row, Mapping):
                raise PricingError(f"{source}.{name}: expected a table of prices")
            allowed = PRICE_FIELDS + MODEL_FIELDS
            unknown = sorted(set(row) - set(allowed))
            if unknown:
                raise PricingError(
                    f"{source}.{name}.{unknown[0]}: unknown price field (allowed: {', '.join(allowed)})"
                )
            fields = {k: v for k, v in row.items() if k in PRICE_FIELDS}
            try:
                facts = _ModelFacts.model_validate({k: v for k, v in row.items() if k in MODEL_FIELDS})
            except ValidationError as exc:
                raise PricingError(f"{source}.{name}.{_first_error(exc)}") from None
            # An override of an alias ("sonnet") prices what the alias names.
            key = name if name in self.prices else self.aliases.get(name, self.api_ids.get(name, name))
            if key not in self.prices and facts.api_ids is None:
                facts.api_ids = [name]  # a model of the user's own (a gateway's): its name is its id
            for api_id in facts.api_ids or ():
                self.api_ids[api_id] = key
            if facts.max_output_tokens is not None:
                self.max_output_tokens[key] = facts.max_output_tokens
            base = self.prices.get(key)
            merged: dict[str, float] = base.model_dump() if base else {}
            merged.update(fields)
            # A new input price without new cache prices: derive them rather than keep stale ones.
            if "input" in fields:
                if "cache_write" not in fields:
                    merged["cache_write"] = fields["input"] * self.cache_write_multiplier
                if "cache_read" not in fields:
                    merged["cache_read"] = fields["input"] * self.cache_read_multiplier
            missing = [f for f in ("input", "output") if f not in merged]
            if missing:
                raise PricingError(f"{source}.{name}: a new model needs {' and '.join(missing)}")
            try:
                self.prices[key] = Pricing(**merged)
            except ValidationError as exc:
                raise PricingError(f"{source}.{name}.{_first_error(exc)}") from None

    # -- lookups ----------------------------------------------------------------------
    def resolve(self, model: str) -> str | None:
        """The table's row for ``model`` (itself, its alias target, or the row listing it as an API id), else None."""
        if model in self.prices:
            return model
        for target in (self.aliases.get(model), self.api_ids.get(model)):
            if target in self.prices:
                return target
        return None

    def is_api_id(self, model: str) -> bool:
        """Whether the Anthropic API accepts ``model`` as it is spelled (a row's ``api_ids``)."""
        return model in self.api_ids and self.api_ids[model] in self.prices

    def api_ids_of(self, model: str) -> list[str]:
        """The API ids of ``model``'s row (to suggest the right spelling)."""
        key = self.resolve(model)
        return sorted(api_id for api_id, row in self.api_ids.items() if row == key) if key else []

    def output_limit(self, model: str) -> int | None:
        """The model's maximum output tokens, when the table knows it."""
        key = self.resolve(model)
        return self.max_output_tokens.get(key) if key else None

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.resolve(model) is not None

    def price(self, model: str) -> Pricing:
        key = self.resolve(model)
        if key is None:
            raise UnknownModel(model)
        return self.prices[key]

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float:
        """Dollars for ``usage`` at ``model``'s prices; raises UnknownModel."""
        return self.price(model).cost(usage, batch=batch, batch_discount=self.batch_discount)

    def check_models(self, names: Iterable[str | None]) -> list[str]:
        """One error line per distinct model name without a price (empty list: all priced)."""
        errors: list[str] = []
        seen: set[str] = set()
        for name in names:
            if not name or name in seen:
                continue
            seen.add(name)
            if name not in self:
                errors.append(str(UnknownModel(name)))
        return errors

    def expected_task_cost(self, task: SisTask, model: str) -> float:
        """Cost of one attempt at ``task`` as its SIS estimates it (tokens x list prices)."""
        usage = Usage(
            input_tokens=task.estimated_tokens.input, output_tokens=task.estimated_tokens.output
        )
        return self.cost(model, usage)


def expected_task_cost(task: SisTask, model: str, table: PricingTable | None = None) -> float:
    """:meth:`PricingTable.expected_task_cost` on ``table`` (default: the shipped + user table)."""
    return (table or PricingTable.load()).expected_task_cost(task, model)


def check_mission_pricing(config: Any, tasks: Iterable[SisTask] = (), user_config: Path | None = None) -> list[str]:
    """Pricing problems of a mission, for ``validate``: bad [pricing] overrides, then every
    model named in [models] or a task's ``model_hint`` that has no price. Empty: all priced."""
    try:
        table = PricingTable.load(config.pricing or None, user_config=user_config)
    except PricingError as exc:
        return [str(exc)]
    models = config.models
    names = [models.planner, models.implementer, models.strong, models.coordinator]
    names += [t.model_hint for t in tasks if t.model_hint]
    return table.check_models(names)


def mission_pricing_problems(mission: Any, user_config: Path | None = None, backend: str | None = None) -> list[Any]:
    """Every unpriced model of a loaded mission as a located ``Problem`` (``validate`` and
    ``run`` refuse them: a missing price must never become a silent $0). With the anthropic
    backend (``backend``, default the mission's), also every model the API would refuse:
    not an API id, or asked for more output tokens than it can give."""
    config = mission.config
    try:
        table = PricingTable.load(config.pricing or None, user_config=user_config)
    except PricingError as exc:
        return [Problem("mission.toml", "pricing", str(exc))]
    to_api = (backend or config.agents.backend) == API_BACKEND
    problems = []
    models = config.models
    for field_name in ("planner", "implementer", "strong", "coordinator"):
        name = getattr(models, field_name)
        if name not in table:
            problems.append(Problem("mission.toml", f"models.{field_name}", str(UnknownModel(name))))
        elif to_api:
            problems += _api_problems(table, models, name, "mission.toml", f"models.{field_name}",
                                      "planner_max_tokens" if field_name == "planner" else "implementer_max_tokens")
    for path, sis in mission.sis:
        source = path.relative_to(mission.root).as_posix() if path.is_relative_to(mission.root) else str(path)
        for index, task in enumerate(sis.tasks):
            if task.model_hint and task.model_hint not in table:
                problems.append(Problem(source, f"tasks[{index}].model_hint", str(UnknownModel(task.model_hint))))
            elif task.model_hint and to_api:
                problems += _api_problems(table, models, task.model_hint, source, f"tasks[{index}].model_hint",
                                          "implementer_max_tokens")
    return problems


def _api_problems(table: PricingTable, models: Any, name: str, source: str, where: str, budget_field: str) -> list[Any]:
    """Why the Anthropic API would refuse (or stall on) requests for model ``name``."""
    if not table.is_api_id(name):
        ids = table.api_ids_of(name)
        hint = f" (use {' or '.join(ids)})" if ids else ""
        return [Problem(source, where, f"{name!r} is not an Anthropic API model id{hint}")]
    problems = []
    max_tokens = getattr(models, budget_field)
    limit = table.output_limit(name)
    if limit is not None and max_tokens > limit:
        problems.append(Problem("mission.toml", f"models.{budget_field}",
                                f"{max_tokens} is above {name}'s output limit of {limit} tokens (the API refuses it)"))
    per_minute = (models.limits.get(name) or ModelLimits()).output_tokens_per_minute
    if max_tokens > per_minute:
        problems.append(Problem("mission.toml", f"models.{budget_field}",
                                f"{max_tokens} is above {name}'s output_tokens_per_minute limit of {per_minute}: every call "
                                f"after a long answer would wait for the limit; lower it or set "
                                f'[models.limits."{name}"] output_tokens_per_minute to your account\'s limit'))
    return problems
