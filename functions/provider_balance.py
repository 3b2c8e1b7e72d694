"""Scheduled hourly: reads the provider account's balance and puts it as the `ProviderBalance`
metric (원); the alarm provider-balance-low pages below `sender.balance_alarm_krw`, or when no
balance could be read for two hours (docs/alarms.md#provider-balance-low)."""

from sotong import init_phase  # first: init runs with the garbage collector paused

# isort: split
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sotong.config import load_hospital
from sotong.notify.providers.factory import Providers
from sotong.observability import get_logger, get_metrics
from sotong.resources import require_env

require_env("provider_balance")
logger = get_logger("provider_balance")
metrics = get_metrics("provider_balance")
hospital = load_hospital()
providers = Providers(hospital)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reporter = providers.balance_reporter()
    balance = reporter.balance()
    threshold = hospital.sender.balance_alarm_krw
    if balance.cash_krw is None:
        metrics.add_metric(name="ProviderBalanceUnknown", unit="Count", value=1)
        logger.error("provider balance unknown", provider=reporter.name, reason=balance.reason)
        return {"provider": reporter.name, "balance_krw": None, "reason": balance.reason}
    metrics.add_metric(name="ProviderBalance", unit="None", value=balance.cash_krw)
    if balance.point is not None:
        metrics.add_metric(name="ProviderPoint", unit="None", value=balance.point)
    low = balance.cash_krw < threshold
    (logger.warning if low else logger.info)(
        "provider balance",
        provider=reporter.name,
        balance_krw=balance.cash_krw,
        point=balance.point,
        alarm_below_krw=threshold,
    )
    return {
        "provider": reporter.name,
        "balance_krw": balance.cash_krw,
        "point": balance.point,
        "low": low,
    }


init_phase.finished()
