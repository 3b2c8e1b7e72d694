"""The Cognito user pool that hospital staff sign in with. A staff member's role and department
are groups (one role group, and `dept-<id>` for department staff and reception): only an
administrator can put a user in a group, while a user may edit their own attributes."""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import Aws, Duration, Fn, IStableStringProducer, Lazy, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from infra.naming import physical
from sotong.config.schema import Department
from sotong.staff import DEPARTMENT_GROUP, ROLE_NAMES, ROLES

CONSOLE_SCOPES = (cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE)


@jsii.implements(IStableStringProducer)
class _ConsoleUrl:
    """The console's URL, known only once the API exists (`Api` sets `StaffAuth.console_url`)."""

    def __init__(self, owner: StaffAuth) -> None:
        self.owner = owner

    def produce(self) -> str | None:
        if self.owner.console_url is None:
            raise ValueError(
                "StaffAuth.console_url was never set (infra/constructs/api.py sets it)"
            )
        return self.owner.console_url


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
        # The staff console (docs/console.md) signs in through Cognito's hosted UI on this domain,
        # unique per region across accounts: the hospital and the account it is deployed to.
        self.console_url: str | None = None
        self.domain = self.user_pool.add_domain(
            "ConsoleDomain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=Fn.join("-", [physical(hospital_id, "staff"), Aws.ACCOUNT_ID])
            ),
            managed_login_version=cognito.ManagedLoginVersion.CLASSIC_HOSTED_UI,
        )
        console_url = Lazy.string(_ConsoleUrl(self))
        own = cognito.ClientAttributes().with_standard_attributes(
            email=True, fullname=True, email_verified=True
        )
        # The console's client, in the browser: public (no secret, which a browser cannot keep),
        # the authorization code grant with PKCE only (no implicit grant: no token in a URL),
        # back to the API's /console/ (callback and sign-out).
        self.client = self.user_pool.add_client(
            "StaffClient",
            user_pool_client_name=physical(hospital_id, "staff-web"),
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(
                    authorization_code_grant=True,
                    implicit_code_grant=False,
                    client_credentials=False,
                ),
                scopes=list(CONSOLE_SCOPES),
                callback_urls=[console_url],
                logout_urls=[console_url],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
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
