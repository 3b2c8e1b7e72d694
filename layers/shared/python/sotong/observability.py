"""Logger and Metrics for every function, with personal data masked before a line is written."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import PowertoolsLogRecord

from sotong.masking import mask

NAMESPACE = "Sotong"


class MaskingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: dict[str, Any] | PowertoolsLogRecord) -> str:
        return super().serialize(mask(log))


def get_logger(service: str) -> Logger:
    return Logger(service=service, logger_formatter=MaskingFormatter())


def get_metrics(service: str) -> Metrics:
    metrics = Metrics(
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE), service=service
    )
    hospital = os.environ.get("SOTONG_HOSPITAL_ID")
    if hospital:
        metrics.set_default_dimensions(hospital=hospital)
    return metrics
