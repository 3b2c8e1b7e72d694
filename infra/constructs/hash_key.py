"""The hospital's key for keyed digests (`sotong.keys`): a secret the stack generates once.

Phone and e-mail keys, erasure tombstones and signed cursors are HMAC-SHA256 under this key, so
a stored digest cannot be reversed by hashing every 010 number. Every stored key depends on the
value: it is never rotated and never deleted with the stack.
"""

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge

KEY_LENGTH = 64
"""Characters of the generated value: letters and digits, about 380 bits (keys.py needs 32+
bytes)."""

NO_ROTATION = (
    "The value is the HMAC key of every stored phone/e-mail key, tombstone and cursor; rotating "
    "it would orphan them all (opt-outs and erasure tombstones would stop matching), so it is "
    "generated once and never rotated"
)


class HashKey(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, hospital_id: str, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        # No physical name, like the tables: a secret retained by a failed first deploy must
        # not block the next one (the stack's output names it).
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description=f"Sotong {hospital_id}: HMAC key of the keyed digests (never rotate)",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=KEY_LENGTH,
                exclude_punctuation=True,
                include_space=False,
                require_each_included_type=True,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.secret,
            {
                "AwsSolutions-SMG4": NO_ROTATION,
                "HIPAA.Security-SecretsManagerRotationEnabled": NO_ROTATION,
            },
        )


def grant_read(secret: secretsmanager.ISecret, key: kms.IKey, role: iam.IRole) -> None:
    """GetSecretValue on this one secret, and Decrypt with the key through Secrets Manager only."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadHashKey",
            actions=["secretsmanager:GetSecretValue"],
            resources=[secret.secret_arn],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="DecryptHashKey",
            actions=["kms:Decrypt"],
            resources=[key.key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"secretsmanager.{Stack.of(role).region}.amazonaws.com",
                    "kms:EncryptionContext:SecretARN": secret.secret_arn,
                }
            },
        )
    )
