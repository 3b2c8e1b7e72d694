"""One hospital's stack: every resource in `sotong.resources`, configured by its hospital file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra.constructs.api import Api
from infra.constructs.data import Tables
from infra.constructs.email import EmailEvents
from infra.constructs.encryption import EncryptionKey
from infra.constructs.firewall import Firewall
from infra.constructs.functions import Functions, write_config_layer
from infra.constructs.hash_key import HashKey
from infra.constructs.monitoring import Monitoring
from infra.constructs.queues import Queues
from infra.constructs.schedules import Schedules
from infra.constructs.staff_auth import StaffAuth
from infra.naming import pascal
from sotong.config.schema import HospitalConfig
from sotong.resources import QUEUES, TABLES

APP_TAG = ("sotong:app", "sotong")
HOSPITAL_TAG = "sotong:hospital"


def stack_name(hospital_id: str) -> str:
    return f"Sotong-{hospital_id}"


class SotongStack(Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        config: HospitalConfig,
        powertools_version: str,
        build_dir: Path,
        **kwargs: Any,
    ) -> None:
        hospital_id = config.hospital_id
        super().__init__(
            scope,
            stack_name(hospital_id),
            description=f"Sotong patient communication for hospital {hospital_id}",
            **kwargs,
        )
        self.config = config
        Tags.of(self).add(*APP_TAG)
        Tags.of(self).add(HOSPITAL_TAG, hospital_id)

        key = EncryptionKey(self, "Encryption", hospital_id=hospital_id).key
        self.tables = Tables(self, "Data", key=key)
        self.queues = Queues(self, "Queues", hospital_id=hospital_id, key=key)
        self.hash_key = HashKey(self, "HashKey", hospital_id=hospital_id, key=key).secret
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            key=key,
            tables=self.tables,
            queues=self.queues,
            hash_key=self.hash_key,
            powertools_version=powertools_version,
            config_layer_dir=write_config_layer(config, build_dir),
            build_dir=build_dir,
        )
        self.schedules = Schedules(
            self,
            "Schedules",
            hospital_id=hospital_id,
            key=key,
            functions=self.functions.by_name,
        )
        self.staff = StaffAuth(
            self, "Staff", hospital_id=hospital_id, departments=config.departments
        )
        self.api = Api(
            self,
            "Api",
            hospital_id=hospital_id,
            key=key,
            functions=self.functions.by_name,
            user_pool=self.staff.user_pool,
        )
        email = EmailEvents(
            self, "EmailEvents", hospital_id=hospital_id, key=key, functions=self.functions.by_name
        )
        Firewall(self, "Firewall", hospital_id=hospital_id, key=key, stage_arn=self.api.stage_arn)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            key=key,
            functions=self.functions.by_name,
            dead_letter_queues={
                **{f"{q.name}": self.queues.dlq_by_name[q.name] for q in QUEUES},
                "scheduler": self.schedules.dead_letter_queue,
                "email-events": email.dead_letter_queue,
            },
            tables=self.tables.by_name,
            rest_api=self.api.rest_api,
            queues=self.queues.by_name,
        )
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url, description="REST API base URL")
        CfnOutput(self, "UserPoolId", value=self.staff.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.staff.client.user_pool_client_id)
        CfnOutput(
            self,
            "HashKeySecretArn",
            value=self.hash_key.secret_arn,
            description="SOTONG_HASH_KEY_SECRET (the keyed digests' HMAC key: never rotate)",
        )
        for spec in TABLES:
            CfnOutput(
                self,
                f"{pascal(spec.name)}TableName",
                value=self.tables.by_name[spec.name].table_name,
                description=spec.env,
            )
        for queue in QUEUES:
            CfnOutput(
                self,
                f"{pascal(queue.name)}QueueUrl",
                value=self.queues.by_name[queue.name].queue_url,
                description=queue.env,
            )
            CfnOutput(
                self,
                f"{pascal(queue.name)}DlqUrl",
                value=self.queues.dlq_by_name[queue.name].queue_url,
                description=queue.dlq_env,
            )
