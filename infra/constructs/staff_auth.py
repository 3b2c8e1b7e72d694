"""The Cognito user pool that hospital staff sign in with. A staff member's role and department
are groups (one role group, and `dept-<id>` for department staff and reception): only an
administrator can put a user in a group, while a user may edit their own attributes."""

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra.naming import physical
from sotong.config.schema import Department
from sotong.staff import DEPARTMENT_GROUP, ROLE_NAMES, ROLES


class StaffAuth(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        hospital_id: str,
        departments: Sequence[Department],
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=physical(hospital_id, "staff"),
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True),
                fullname=cognito.StandardAttribute(required=True, mutable=True),
            ),
            # Nothing reads `custom:department` any more (the department is a group), and no
            # client may write it; it stays because Cognito cannot remove a custom attribute.
            custom_attributes={
                "department": cognito.StringAttribute(min_len=1, max_len=40, mutable=True)
            },
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for precedence, role in enumerate(ROLES):
            cognito.UserPoolGroup(
                self,
                f"Group-{role}",
                user_pool=self.user_pool,
                group_name=role,
                description=ROLE_NAMES[role][:2048],
                precedence=precedence,
            )
        for department in departments:
            cognito.UserPoolGroup(
                self,
                f"Department-{department.id}",
                user_pool=self.user_pool,
                group_name=f"{DEPARTMENT_GROUP}{department.id}",
                description=f"{department.name}: members see this department's work",
                precedence=100,
            )
        own = cognito.ClientAttributes().with_standard_attributes(
            email=True, fullname=True, email_verified=True
        )
        self.client = self.user_pool.add_client(
            "StaffClient",
            user_pool_client_name=physical(hospital_id, "staff-web"),
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            disable_o_auth=True,
            read_attributes=own,
            write_attributes=cognito.ClientAttributes().with_standard_attributes(
                email=True, fullname=True
            ),
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.hours(12),
        )
