"""DynamoDB tables, one per `sotong.resources.TABLES` entry."""

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.naming import pascal
from sotong.resources import TABLES, Table


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.by_name: dict[str, dynamodb.TableV2] = {
            spec.name: self._table(spec, key) for spec in TABLES
        }

    def _table(self, spec: Table, key: kms.IKey) -> dynamodb.TableV2:
        # No physical name: a retained table left by a failed first deploy must not block the next.
        return dynamodb.TableV2(
            self,
            pascal(spec.name),
            partition_key=_key(spec.partition_key),
            sort_key=_key(spec.sort_key) if spec.sort_key else None,
            billing=dynamodb.Billing.on_demand(),
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=index.name,
                    partition_key=_key(index.partition_key),
                    sort_key=_key(index.sort_key),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
                for index in spec.indexes
            ],
            time_to_live_attribute=spec.ttl_attribute,
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            dynamo_stream=dynamodb.StreamViewType[spec.stream] if spec.stream else None,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
