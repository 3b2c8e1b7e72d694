"""The providers a hospital's config asks for, built once per function instance."""

from __future__ import annotations

import os
from functools import cache

from sotong import secrets
from sotong.config.schema import HospitalConfig
from sotong.notify.providers.base import Provider, ReportsBalance
from sotong.notify.providers.sandbox import SandboxProvider

SOLAPI_URL_ENV = "SOTONG_SOLAPI_URL"
SES_CONFIGURATION_SET_ENV = "SOTONG_SES_CONFIGURATION_SET"
PROVIDER_TIMEOUT_ENV = "SOTONG_PROVIDER_TIMEOUT_SECONDS"


class Providers:
    def __init__(self, hospital: HospitalConfig) -> None:
        self.hospital = hospital
        self._solapi: Provider | None = None

    def secret(self, name: str) -> str | None:
        ref = getattr(self.hospital.sender, name)
        if self.hospital.sender.provider == "sandbox" or ref is None:
            return None
        return secrets.resolve(ref)

    def for_channel(self, channel: str) -> Provider:
        sender = self.hospital.sender
        if sender.provider == "sandbox":
            return _sandbox()
        if channel == "email":
            return _email(sender.email_from)
        if self._solapi is None:
            self._solapi = _solapi(self.hospital)
        return self._solapi

    def balance_reporter(self) -> ReportsBalance:
        """The provider whose account balance the hospital pays from (Solapi, or the sandbox)."""
        provider = self.for_channel("sms")
        if not isinstance(provider, ReportsBalance):
            raise TypeError(f"provider {provider.name} reports no balance")
        return provider


@cache
def _sandbox() -> Provider:
    return SandboxProvider()


@cache
def _email(from_address: str) -> Provider:
    from sotong.notify.providers.ses import SesEmailProvider

    return SesEmailProvider(from_address, os.environ.get(SES_CONFIGURATION_SET_ENV) or None)


def _solapi(hospital: HospitalConfig) -> Provider:
    from sotong.notify.providers.solapi import SolapiProvider

    ref = hospital.sender.provider_credentials
    assert ref is not None
    credentials = secrets.resolve_json(ref)
    base_url = os.environ.get(SOLAPI_URL_ENV, "https://api.solapi.com")
    timeout_s = float(os.environ.get(PROVIDER_TIMEOUT_ENV) or 5)
    return SolapiProvider(
        credentials["api_key"], credentials["api_secret"], base_url=base_url, timeout_s=timeout_s
    )
