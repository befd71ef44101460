"""deploy/cdk: the AWS CDK app synthesizes (in-process, on the installed Node.js), cfn-lint finds
no error in the CloudFormation template, and the template has what the deployment promises."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.deploy import dockerfile_parse

# node first: importing aws_cdk already starts the jsii runtime on Node.js
if shutil.which("node") is None:
    pytest.skip("aws-cdk-lib needs Node.js (apt-get install nodejs)", allow_module_level=True)
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
pytest.importorskip("aws_cdk", reason="the deploy extra is not installed (pip install '.[deploy]')")

CDK_DIR = Path(__file__).resolve().parents[2] / "deploy" / "cdk"
CERT = "arn:aws:acm:eu-central-1:123456789012:certificate/0f0e0d0c-1111-2222-3333-444455556666"
Resources = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def cdk_modules() -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(CDK_DIR))
    try:
        import app as cdk_app
        import doctorai_stack

        yield cdk_app, doctorai_stack
    finally:
        sys.path.remove(str(CDK_DIR))


@pytest.fixture(scope="module")
def templates(
    cdk_modules: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """One synthesis per module (10-35 s here): the app as `cdk synth` runs it."""
    import aws_cdk as cdk

    cdk_app, _ = cdk_modules
    started = time.perf_counter()
    application = cdk.App(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stacks = cdk_app.build(application)
    assembly = application.synth()
    print(f"cdk synth in-process: {time.perf_counter() - started:.1f} s")
    return {s.stack_name: assembly.get_stack_by_name(s.stack_name).template for s in stacks}


@pytest.fixture(scope="module")
def template(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["DoctorAIBackend"]


def _of_type(template: dict[str, Any], kind: str) -> Resources:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _one(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = _of_type(template, kind)
    assert len(found) == 1, f"{kind}: {sorted(found)}"
    name, res = next(iter(found.items()))
    return name, res["Properties"]


def _container(template: dict[str, Any]) -> dict[str, Any]:
    _, task = _one(template, "AWS::ECS::TaskDefinition")
    (container,) = task["ContainerDefinitions"]
    data: dict[str, Any] = container
    return data


def _refs(value: Any) -> set[str]:
    """Logical ids a template value points at (Ref, Fn::GetAtt), however deeply nested."""
    text = json.dumps(value)
    return set(re.findall(r'"Ref": "(\w+)"', text)) | set(
        re.findall(r'"Fn::GetAtt": \["(\w+)"', text)
    )


@pytest.mark.parametrize("stack", ["DoctorAIRegistry", "DoctorAIBackend"])
def test_template_passes_cfn_lint_without_errors(
    templates: dict[str, dict[str, Any]], stack: str
) -> None:
    from cfnlint.api import lint

    matches = lint(json.dumps(templates[stack]), regions=["eu-central-1", "us-east-1"])
    errors = [f"{m.rule.id} {m.message} at {m.path}" for m in matches if m.rule.id[0] == "E"]
    assert errors == []
    # W3005: CDK writes a DependsOn that a Ref already implies; harmless, nothing else allowed
    warnings = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id[0] == "W"]
    assert [w for w in warnings if not w.startswith("W3005")] == []


def test_cfn_lint_finds_errors_in_a_broken_template(template: dict[str, Any]) -> None:
    """The check above can fail: the same template with an RDS property misspelt."""
    from cfnlint.api import lint

    broken = json.loads(json.dumps(template))
    db_id, _ = _one(broken, "AWS::RDS::DBInstance")
    broken["Resources"][db_id]["Properties"]["MultiAz"] = True
    assert any(m.rule.id[0] == "E" for m in lint(json.dumps(broken), regions=["us-east-1"]))


def test_https_listener_allows_tls_1_2_and_up_only(template: dict[str, Any]) -> None:
    listeners = [
        r["Properties"]
        for r in _of_type(template, "AWS::ElasticLoadBalancingV2::Listener").values()
    ]
    (https,) = [p for p in listeners if p["Protocol"] == "HTTPS"]
    assert https["Port"] == 443
    # the ELB policies that refuse TLS 1.0/1.1 (docs: "Security policies for your ALB")
    assert re.fullmatch(
        r"ELBSecurityPolicy-(TLS13-1-[23]|TLS-1-2|FS-1-2)[\w-]*", https["SslPolicy"]
    )
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    (http,) = [p for p in listeners if p["Protocol"] == "HTTP"]
    assert http["Port"] == 80
    (action,) = http["DefaultActions"]
    assert action["Type"] == "redirect"
    assert action["RedirectConfig"] == {
        "Port": "443",
        "Protocol": "HTTPS",
        "StatusCode": "HTTP_301",
    }
    _, alb = _one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == "internet-facing"


def test_certificate_and_image_tag_are_parameters_without_context(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert "CertificateArn" in params
    assert "ImageTag" in params
    assert re.fullmatch(params["CertificateArn"]["AllowedPattern"], CERT)


def test_at_least_two_tasks_with_cpu_autoscaling(template: dict[str, Any]) -> None:
    service_id, service = _one(template, "AWS::ECS::Service")
    assert service["DesiredCount"] >= 2
    assert service["LaunchType"] == "FARGATE"
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]["Rollback"] is True
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] >= 100
    target_id, target = _one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["MinCapacity"] >= 2
    assert target["MaxCapacity"] >= target["MinCapacity"]
    assert service_id in _refs(target["ResourceId"])
    _, policy = _one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "ECSServiceAverageCPUUtilization"
    )
    assert 0 < tracking["TargetValue"] < 100
    assert target_id in _refs(policy["ScalingTargetId"])


def test_vpc_spans_two_availability_zones(template: dict[str, Any]) -> None:
    subnets = [r["Properties"] for r in _of_type(template, "AWS::EC2::Subnet").values()]
    azs = {json.dumps(s["AvailabilityZone"]) for s in subnets}
    assert len(azs) == 2
    assert len(subnets) == 6  # public, app (NAT egress) and isolated database subnets per AZ
    assert len(_of_type(template, "AWS::EC2::NatGateway")) == 2


def test_tasks_run_the_app_s_ecr_image_with_their_own_roles(
    templates: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    registry = templates["DoctorAIRegistry"]
    repo_id, repo = _one(registry, "AWS::ECR::Repository")
    assert repo["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repo["ImageTagMutability"] == "IMMUTABLE"
    exported = {
        o["Export"]["Name"]
        for o in registry.get("Outputs", {}).values()
        if "Export" in o and repo_id in _refs(o["Value"])
    }
    image = json.dumps(_container(template)["Image"])
    imported = set(re.findall(r'"Fn::ImportValue": "([^"]+)"', image))
    assert imported
    assert imported <= exported  # the image comes from the registry stack's repository
    assert "ImageTag" in _refs(_container(template)["Image"])
    _, task = _one(template, "AWS::ECS::TaskDefinition")
    roles = _of_type(template, "AWS::IAM::Role")
    for field in ("TaskRoleArn", "ExecutionRoleArn"):
        (role_id,) = _refs(task[field])
        assert role_id in roles
        principal = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        assert principal["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert _refs(task["TaskRoleArn"]) != _refs(task["ExecutionRoleArn"])


def test_logs_go_to_cloudwatch_with_retention(template: dict[str, Any]) -> None:
    groups = _of_type(template, "AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert 0 < group["Properties"]["RetentionInDays"] <= 3653, name
    logging = _container(template)["LogConfiguration"]
    assert logging["LogDriver"] == "awslogs"
    assert _refs(logging["Options"]["awslogs-group"]) <= set(groups)
    assert not _of_type(template, "Custom::LogRetention")  # no Lambda needed for retention


def test_postgres_15_multi_az_encrypted_with_backups(template: dict[str, Any]) -> None:
    _, db = _one(template, "AWS::RDS::DBInstance")
    assert db["Engine"] == "postgres"
    assert re.fullmatch(r"15(\.\d+)?", db["EngineVersion"])
    assert db["MultiAZ"] is True
    assert db["StorageEncrypted"] is True
    assert db["BackupRetentionPeriod"] >= 7
    assert db["DeletionProtection"] is True
    assert db.get("PubliclyAccessible", False) is False
    (param_id,) = _refs(db["DBParameterGroupName"])
    params = template["Resources"][param_id]["Properties"]["Parameters"]
    assert params["rds.force_ssl"] == "1"
    # the password comes from a generated Secrets Manager secret, never the template
    assert "resolve:secretsmanager" in json.dumps(db["MasterUserPassword"])


def test_models_bucket_uses_a_customer_kms_key_and_refuses_plain_http(
    template: dict[str, Any],
) -> None:
    bucket_id, bucket = _one(template, "AWS::S3::Bucket")
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    default = rule["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    (key_id,) = _refs(default["KMSMasterKeyID"])
    key = template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    _, policy = _one(template, "AWS::S3::BucketPolicy")
    assert bucket_id in _refs(policy["Bucket"])
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)


def test_secrets_come_from_secrets_manager_not_plain_environment(template: dict[str, Any]) -> None:
    container = _container(template)
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    stored = _of_type(template, "AWS::SecretsManager::Secret")
    attached = _of_type(template, "AWS::SecretsManager::SecretTargetAttachment")
    for name in (
        "DOCTORAI_BACKEND_JWT_SECRET",
        "DOCTORAI_BACKEND_METRICS_TOKEN",
        "DOCTORAI_BACKEND_MFA_KEY",
        "DOCTORAI_DB_PASSWORD",
        "DOCTORAI_TUF_TIMESTAMP_KEY_PEM",
    ):
        assert name in secrets, name
        assert _refs(secrets[name]), name
        assert _refs(secrets[name]) <= set(stored) | set(attached), name
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert not [n for n in env if re.search(r"SECRET|PASSWORD|TOKEN|KEY_PEM|DB_URL", n)]
    for name, secret in stored.items():  # generated in AWS, no value in the template
        assert "SecretString" not in secret["Properties"], name
        assert "GenerateSecretString" in secret["Properties"], name


def test_container_trusts_forwarded_headers_from_the_balancer_subnets_only(
    template: dict[str, Any],
) -> None:
    env = {e["Name"]: e["Value"] for e in _container(template)["Environment"]}
    public = sorted(
        r["Properties"]["CidrBlock"]
        for r in _of_type(template, "AWS::EC2::Subnet").values()
        if r["Properties"].get("MapPublicIpOnLaunch")
    )
    assert len(public) == 2
    assert sorted(env["DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS"].split(",")) == public
    assert "*" not in env["DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS"]


def test_only_the_balancer_reaches_the_tasks_and_only_tasks_the_database(
    template: dict[str, Any],
) -> None:
    _, service = _one(template, "AWS::ECS::Service")
    _, db = _one(template, "AWS::RDS::DBInstance")
    _, alb = _one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    (tasks_sg,) = _refs(service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"])
    (db_sg,) = _refs(db["VPCSecurityGroups"])
    (alb_sg,) = _refs(alb["SecurityGroups"])
    sources: dict[str, set[str]] = {tasks_sg: set(), db_sg: set()}
    for rule in _of_type(template, "AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        (group,) = _refs(props["GroupId"])
        if group in sources:
            assert "CidrIp" not in props, props
            sources[group] |= _refs(props["SourceSecurityGroupId"])
    assert sources == {tasks_sg: {alb_sg}, db_sg: {tasks_sg}}
    for name in (tasks_sg, db_sg):  # nothing inline either
        inline = template["Resources"][name]["Properties"].get("SecurityGroupIngress", [])
        assert inline == [], name
    for sg in _of_type(template, "AWS::EC2::SecurityGroup").values():
        for open_rule in sg["Properties"].get("SecurityGroupIngress", []):
            if open_rule.get("CidrIp") == "0.0.0.0/0":
                assert open_rule["FromPort"] in (80, 443), open_rule


def test_alarms_mirror_the_prometheus_alerts_and_notify_sns(template: dict[str, Any]) -> None:
    topic_id, _ = _one(template, "AWS::SNS::Topic")
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    names = {k: a["Properties"] for k, a in alarms.items()}
    for wanted in (
        "DoctorAIHigh5xxRate",
        "DoctorAIBackendDown",
        "DoctorAIUnhealthyTargets",
        "DoctorAISlowRequests",
        "DoctorAIDatabaseCpu",
        "DoctorAIDatabaseStorage",
    ):
        assert any(k.startswith(wanted) for k in names), wanted
    for name, alarm in names.items():
        assert _refs(alarm["AlarmActions"]) == {topic_id}, name
        assert alarm["AlarmDescription"], name
    metrics = json.dumps(list(names.values()))
    for metric in (
        "HTTPCode_Target_5XX_Count",
        "HealthyHostCount",
        "UnHealthyHostCount",
        "CPUUtilization",
        "FreeStorageSpace",
    ):
        assert metric in metrics, metric


def test_fewer_than_two_tasks_is_refused(cdk_modules: tuple[Any, Any]) -> None:
    import aws_cdk as cdk

    _, doctorai_stack = cdk_modules
    application = cdk.App()
    registry = doctorai_stack.DoctorAIRegistryStack(application, "Registry")
    with pytest.raises(ValueError, match="at least 2 tasks"):
        doctorai_stack.DoctorAIBackendStack(
            application,
            "Small",
            doctorai_stack.BackendOptions(desired_count=1),
            registry.repository,
        )


def test_context_values_reach_the_options(cdk_modules: tuple[Any, Any]) -> None:
    import aws_cdk as cdk

    cdk_app, _ = cdk_modules
    application = cdk.App(
        context={"certificateArn": CERT, "imageTag": "1.4.2", "desiredCount": "3", "maxCount": "12"}
    )
    options = cdk_app.options_from_context(application)
    assert (options.certificate_arn, options.image_tag) == (CERT, "1.4.2")
    assert (options.desired_count, options.max_count) == (3, 12)
    assert cdk_app.options_from_context(cdk.App()).desired_count == 2


def test_the_task_speaks_the_entrypoint_s_and_image_s_language(template: dict[str, Any]) -> None:
    """Names the stack injects are the ones deploy/entrypoint.py reads; paths exist in the image."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("entrypoint", CDK_DIR.parent / "entrypoint.py")
    assert spec is not None
    assert spec.loader is not None
    entrypoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entrypoint)
    container = _container(template)
    injected = {s["Name"] for s in container["Secrets"]}
    assert {f"DOCTORAI_DB_{p}" for p in entrypoint.DB_PARTS} <= injected
    assert {f"DOCTORAI_TUF_{r.upper()}_KEY_PEM" for r in entrypoint.ONLINE_ROLES} <= injected
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    # read as Docker reads the file (tests/deploy/dockerfile_parse.py), not grepped
    dockerfile = (CDK_DIR.parent / "Dockerfile").read_text()
    image = dockerfile_parse.read(dockerfile, CDK_DIR.parents[1])
    assert PurePosixPath(env["DOCTORAI_DB_SSLROOTCERT"]) in image.added
    keys_dir = env["DOCTORAI_BACKEND_KEYS_DIR"]
    assert any(
        re.search(rf"mkdir -p [^&]*{re.escape(keys_dir)}\b", r)
        and re.search(rf"chown doctorai [^&]*{re.escape(keys_dir)}\b", r)
        for r in image.run_lines
    ), "the image does not create the keys directory for the backend's user"
    assert image.source_of("/app/deploy/entrypoint.py") == CDK_DIR.parent / "entrypoint.py"
    assert "/app/deploy/entrypoint.py" in image.entrypoint


def test_ecs_and_the_balancer_check_liveness_not_readiness(template: dict[str, Any]) -> None:
    """ECS replaces a task that fails the container check or the target group's check. Both use
    /healthz (process only): a check on the shared database or timestamp.json (/readyz) would
    fail every task at once during an RDS fail-over and have ECS replace them all in a loop.
    The timestamp expiry is alerted on instead (deploy/prometheus)."""
    command = " ".join(_container(template)["HealthCheck"]["Command"])
    assert "/healthz" in command
    assert "/readyz" not in command
    _, target_group = _one(template, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert target_group["HealthCheckPath"] == "/healthz"
    alerts = (CDK_DIR.parent / "prometheus" / "alerts.yml").read_text()
    assert "doctorai_tuf_timestamp_expiry_timestamp_seconds" in alerts
