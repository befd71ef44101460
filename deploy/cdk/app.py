"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run this (see cdk.json and deploy/README.md).

Context values (``-c name=value``): certificateArn, imageTag (both become CloudFormation
parameters when left out), desiredCount, maxCount, alarmEmail, prometheusCidr.
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from doctorai_stack import BackendOptions, DoctorAIBackendStack, DoctorAIRegistryStack


def options_from_context(app: cdk.App) -> BackendOptions:
    """The stack's options from ``-c`` context values; absent ones keep their defaults."""

    def ctx(name: str, default: str = "") -> str:
        value = app.node.try_get_context(name)
        return default if value is None else str(value)

    return BackendOptions(
        certificate_arn=ctx("certificateArn"),
        image_tag=ctx("imageTag"),
        desired_count=int(ctx("desiredCount", "2")),
        max_count=int(ctx("maxCount", "8")),
        alarm_email=ctx("alarmEmail"),
        prometheus_cidr=ctx("prometheusCidr"),
    )


def build(app: cdk.App) -> tuple[DoctorAIRegistryStack, DoctorAIBackendStack]:
    """The registry stack (deployed first, then the image pushed) and the backend stack."""
    env = None
    if os.environ.get("CDK_DEFAULT_ACCOUNT"):  # set by the cdk CLI from the AWS credentials
        env = cdk.Environment(
            account=os.environ["CDK_DEFAULT_ACCOUNT"], region=os.environ.get("CDK_DEFAULT_REGION")
        )
    registry = DoctorAIRegistryStack(app, "DoctorAIRegistry", env=env)
    backend = DoctorAIBackendStack(
        app, "DoctorAIBackend", options_from_context(app), registry.repository, env=env
    )
    return registry, backend


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
