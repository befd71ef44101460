"""The DoctorAI backend on AWS: ALB (TLS 1.2+) -> ECS Fargate (>= 2 tasks, autoscaled) ->
RDS PostgreSQL 15 (Multi-AZ, encrypted) and S3 (KMS, versioned), secrets from Secrets Manager,
logs in CloudWatch, and CloudWatch alarms that mirror deploy/prometheus/alerts.yml where
CloudWatch can see the same thing (5xx, target health, latency, database CPU and storage).

Synthesized and checked here (tests/deploy/test_cdk_stack.py); never deployed from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, CfnParameter, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from aws_cdk import aws_servicediscovery as sd
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

CONTAINER_PORT = 8080
KEYS_DIR = "/run/doctorai-keys"  # where deploy/entrypoint.py writes the online TUF keys
RDS_CA_BUNDLE = "/etc/ssl/certs/rds-global-bundle.pem"  # added by deploy/Dockerfile


@dataclass(frozen=True)
class BackendOptions:
    """What differs between deployments; everything else is fixed by the stack.

    ``certificate_arn`` and ``image_tag`` left empty become CloudFormation parameters, so one
    synthesized template serves every environment.
    """

    certificate_arn: str = ""
    image_tag: str = ""
    desired_count: int = 2
    max_count: int = 8
    cpu_target_percent: int = 60
    alarm_email: str = ""
    prometheus_cidr: str = ""  # a Prometheus inside the VPC that scrapes each task directly


class DoctorAIRegistryStack(Stack):
    """The image repository, in a stack of its own: the image must be pushed before the
    backend stack's service can start, or its first deployment fails and rolls back."""

    def __init__(self, scope: Construct, construct_id: str, env: Environment | None = None) -> None:
        super().__init__(scope, construct_id, env=env)
        self.repository = ecr.Repository(
            self,
            "Repository",
            repository_name="doctorai-backend",
            image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            encryption=ecr.RepositoryEncryption.KMS,
            lifecycle_rules=[ecr.LifecycleRule(max_image_count=50)],
            removal_policy=RemovalPolicy.RETAIN,
        )
        CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri)


class DoctorAIBackendStack(Stack):
    """All of the backend's AWS resources in one stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        options: BackendOptions,
        repository: ecr.IRepository,
        env: Environment | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=env)
        repo = repository
        if options.desired_count < 2 or options.max_count < options.desired_count:
            raise ValueError(
                f"desired_count {options.desired_count} / max_count {options.max_count}: "
                "the backend runs at least 2 tasks and max_count >= desired_count"
            )
        cert_arn = (
            options.certificate_arn
            or CfnParameter(
                self,
                "CertificateArn",
                description="ACM certificate ARN for the HTTPS listener (the backend's host name)",
                allowed_pattern=r"arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate/[\w-]+",
            ).value_as_string
        )
        image_tag = (
            options.image_tag
            or CfnParameter(
                self,
                "ImageTag",
                description="Tag of the backend image in the stack's ECR repository",
                min_length=1,
            ).value_as_string
        )

        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=2,  # one per AZ: losing an AZ does not cut the other's egress
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                ec2.SubnetConfiguration(name="db", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            ],
        )

        bucket, data_key = self._models_bucket()
        secrets = self._secrets()
        db = self._database(vpc)
        db_secret = db.secret
        if db_secret is None:  # from_generated_secret always makes one
            raise RuntimeError("the database has no credentials secret")
        topic = self._alarm_topic(options.alarm_email)

        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.RETAIN,
        )
        execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="ECS agent: pull the image, write logs, read the task's secrets",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonECSTaskExecutionRolePolicy"
                )
            ],
        )
        task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="The backend process: model packages in S3 (KMS), nothing else",
        )
        bucket.grant_read_write(task_role)
        data_key.grant_encrypt_decrypt(task_role)

        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=1024,
            memory_limit_mib=2048,
            execution_role=execution_role,
            task_role=task_role,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        alb_subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC).subnets
        task.add_container(
            "backend",
            container_name="backend",
            image=ecs.ContainerImage.from_ecr_repository(repo, tag=image_tag),
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT)],
            logging=ecs.LogDriver.aws_logs(stream_prefix="backend", log_group=log_group),
            environment={
                "DOCTORAI_BACKEND_STORAGE_URL": f"s3://{bucket.bucket_name}/packages",
                "DOCTORAI_BACKEND_KEYS_DIR": KEYS_DIR,
                "DOCTORAI_BACKEND_RATE_PER_S": "20",
                "DOCTORAI_BACKEND_RATE_BURST": "60",
                "DOCTORAI_DB_SSLMODE": "verify-full",
                "DOCTORAI_DB_SSLROOTCERT": RDS_CA_BUNDLE,
                # uvicorn believes X-Forwarded-For/-Proto only from the balancer's subnets, so
                # rate limits and logs see the workstation's address, not the balancer's
                "DOCTORAI_BACKEND_FORWARDED_ALLOW_IPS": ",".join(
                    s.ipv4_cidr_block for s in alb_subnets
                ),
            },
            secrets={
                "DOCTORAI_DB_HOST": ecs.Secret.from_secrets_manager(db_secret, "host"),
                "DOCTORAI_DB_PORT": ecs.Secret.from_secrets_manager(db_secret, "port"),
                "DOCTORAI_DB_NAME": ecs.Secret.from_secrets_manager(db_secret, "dbname"),
                "DOCTORAI_DB_USER": ecs.Secret.from_secrets_manager(db_secret, "username"),
                "DOCTORAI_DB_PASSWORD": ecs.Secret.from_secrets_manager(db_secret, "password"),
                "DOCTORAI_BACKEND_JWT_SECRET": ecs.Secret.from_secrets_manager(secrets["jwt"]),
                "DOCTORAI_BACKEND_MFA_KEY": ecs.Secret.from_secrets_manager(secrets["mfa"]),
                "DOCTORAI_BACKEND_METRICS_TOKEN": ecs.Secret.from_secrets_manager(
                    secrets["metrics"]
                ),
                "DOCTORAI_TUF_SNAPSHOT_KEY_PEM": ecs.Secret.from_secrets_manager(
                    secrets["tuf"], "snapshot"
                ),
                "DOCTORAI_TUF_TIMESTAMP_KEY_PEM": ecs.Secret.from_secrets_manager(
                    secrets["tuf"], "timestamp"
                ),
            },
            # Liveness only (/healthz: the process serves). Never /readyz: its database and
            # timestamp.json checks fail on every task at once during an RDS fail-over, and ECS
            # would replace them all in a loop. Timestamp expiry is a Prometheus alert instead.
            health_check=ecs.HealthCheck(
                command=[
                    "CMD-SHELL",
                    'python -c "import urllib.request; urllib.request.urlopen('
                    f"'http://127.0.0.1:{CONTAINER_PORT}/healthz', timeout=4)\"",
                ],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(30),
            ),
        )

        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name="doctorai.internal", vpc=vpc
            ),
        )
        service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            desired_count=options.desired_count,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            health_check_grace_period=Duration.seconds(60),
            # one A record per task: Prometheus scrapes every task, not whichever the ALB picks
            cloud_map_options=ecs.CloudMapOptions(
                name="backend", dns_record_type=sd.DnsRecordType.A
            ),
        )
        db.connections.allow_default_port_from(service, "backend tasks to PostgreSQL")
        if options.prometheus_cidr:
            service.connections.allow_from(
                ec2.Peer.ipv4(options.prometheus_cidr),
                ec2.Port.tcp(CONTAINER_PORT),
                "Prometheus scrapes /metrics (bearer token) on each task",
            )
        scaling = service.auto_scale_task_count(
            min_capacity=options.desired_count, max_capacity=options.max_count
        )
        scaling.scale_on_cpu_utilization(
            "CpuTarget",
            target_utilization_percent=options.cpu_target_percent,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

        alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=True,
            drop_invalid_header_fields=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        )
        https = alb.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            ssl_policy=elbv2.SslPolicy.TLS13_RES,  # TLS 1.2 and 1.3, forward-secret ciphers
            certificates=[acm.Certificate.from_certificate_arn(self, "Cert", cert_arn)],
            open=True,
        )
        alb.add_redirect(source_port=80, target_port=443)
        target_group = https.add_targets(
            "Backend",
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[
                service.load_balancer_target(
                    container_name="backend", container_port=CONTAINER_PORT
                )
            ],
            # /healthz for the same reason as the container check: ECS replaces tasks that
            # fail the target group's check too, and the ALB's fail-open (all targets
            # unhealthy -> route to all) does not stop those replacements.
            health_check=elbv2.HealthCheck(
                path="/healthz",
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            deregistration_delay=Duration.seconds(30),
        )

        self._alarms(topic, alb, target_group, db, options.desired_count)

        CfnOutput(self, "ApiUrl", value=f"https://{alb.load_balancer_dns_name}/api/v1")
        CfnOutput(self, "ModelsBucket", value=bucket.bucket_name)
        CfnOutput(self, "AlarmTopic", value=topic.topic_arn)
        CfnOutput(self, "TufOnlineKeysSecret", value=secrets["tuf"].secret_arn)

    def _models_bucket(self) -> tuple[s3.Bucket, kms.Key]:
        """Model packages: customer-managed KMS key, versioned, private, TLS only."""
        key = kms.Key(
            self,
            "DataKey",
            description="DoctorAI model packages in S3",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        bucket = s3.Bucket(
            self,
            "Models",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(365)),
            ],
        )
        return bucket, key

    def _secrets(self) -> dict[str, sm.Secret]:
        """Generated random secrets, and a slot for the online TUF keys that IT fills in."""

        def generated(name: str, description: str) -> sm.Secret:
            return sm.Secret(
                self,
                name,
                description=description,
                generate_secret_string=sm.SecretStringGenerator(
                    password_length=64, exclude_punctuation=True
                ),
            )

        return {
            "jwt": generated("JwtSecret", "Signs the backend's access and refresh tokens"),
            "mfa": generated("MfaKey", "Encrypts the backend admins' TOTP seeds"),
            "metrics": generated("MetricsToken", "Bearer token Prometheus sends to /metrics"),
            "tuf": sm.Secret(
                self,
                "TufOnlineKeys",
                description=(
                    'JSON {"snapshot": PEM, "timestamp": PEM}: the online TUF keys from '
                    "'doctorai-backend keys init' (root and targets keys stay offline)"
                ),
                generate_secret_string=sm.SecretStringGenerator(
                    secret_string_template='{"snapshot": "", "timestamp": ""}',
                    generate_string_key="unused",
                ),
            ),
        }

    def _database(self, vpc: ec2.Vpc) -> rds.DatabaseInstance:
        engine = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_15_17)
        params = rds.ParameterGroup(
            self, "DbParams", engine=engine, parameters={"rds.force_ssl": "1"}
        )
        identifier = f"{self.stack_name.lower()}-db"
        # made here with a retention rather than by RDS (which keeps logs forever) or by CDK's
        # log-retention Lambda; the instance waits for it so RDS finds it in place
        db_logs = logs.LogGroup(
            self,
            "DbLogs",
            log_group_name=f"/aws/rds/instance/{identifier}/postgresql",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.RETAIN,
        )
        db = rds.DatabaseInstance(
            self,
            "Db",
            instance_identifier=identifier,
            engine=engine,
            parameter_group=params,
            instance_type=ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            multi_az=True,
            storage_encrypted=True,
            allocated_storage=50,
            max_allocated_storage=500,
            backup_retention=Duration.days(14),
            preferred_backup_window="02:00-03:00",
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            database_name="doctorai",
            credentials=rds.Credentials.from_generated_secret("doctorai"),
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
        )
        db.node.add_dependency(db_logs)
        return db

    def _alarm_topic(self, email: str) -> sns.Topic:
        key = kms.Key(
            self,
            "AlarmKey",
            description="DoctorAI alarm notifications (SNS)",
            enable_key_rotation=True,
        )
        # CloudWatch must encrypt what it publishes to an encrypted topic
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        topic = sns.Topic(self, "Alarms", display_name="DoctorAI backend alarms", master_key=key)
        if email:
            topic.add_subscription(subs.EmailSubscription(email))
        return topic

    def _alarms(
        self,
        topic: sns.Topic,
        alb: elbv2.ApplicationLoadBalancer,
        tg: elbv2.ApplicationTargetGroup,
        db: rds.DatabaseInstance,
        desired: int,
    ) -> None:
        """The Prometheus alerts that CloudWatch can see too (names match alerts.yml)."""
        five = Duration.minutes(5)
        requests = tg.metrics.request_count(period=five, statistic="Sum")
        errors = tg.metrics.http_code_target(
            elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five, statistic="Sum"
        )
        ratio = cw.MathExpression(
            expression="IF(req > 30, 100 * FILL(err, 0) / req, 0)",  # >= 0.1 request/s
            using_metrics={"req": requests, "err": errors},
            period=five,
            label="target 5xx %",
        )
        lb_5xx = alb.metrics.http_code_elb(
            elbv2.HttpCodeElb.ELB_5XX_COUNT, period=five, statistic="Sum"
        )
        one_min = Duration.minutes(1)
        healthy = tg.metrics.healthy_host_count(period=one_min, statistic="Minimum")
        gt = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
        lt = cw.ComparisonOperator.LESS_THAN_THRESHOLD
        specs = [
            _Alarm(
                "DoctorAIHigh5xxRate",
                ratio,
                gt,
                2,
                2,
                "over 2% of requests answer 5xx for 10 min",
                mirrors=True,
            ),
            _Alarm(
                "DoctorAIVeryHigh5xxRate",
                ratio,
                gt,
                10,
                1,
                "over 10% of requests answer 5xx",
                mirrors=True,
            ),
            _Alarm(
                "DoctorAIBalancer5xx",
                lb_5xx,
                gt,
                10,
                2,
                "the balancer answers 5xx itself (no healthy task, timeouts)",
            ),
            _Alarm(
                "DoctorAIBackendDown",
                healthy,
                lt,
                1,
                2,
                "no healthy backend task behind the balancer",
                mirrors=True,
                missing_breaches=True,
            ),
            _Alarm(
                "DoctorAIBackendDegraded",
                healthy,
                lt,
                desired,
                10,
                f"fewer than {desired} healthy backend tasks for 10 min",
                missing_breaches=True,
            ),
            _Alarm(
                "DoctorAIUnhealthyTargets",
                tg.metrics.unhealthy_host_count(period=one_min, statistic="Maximum"),
                gt,
                0,
                5,
                "a backend task fails /healthz (liveness) for 5 min",
            ),
            _Alarm(
                "DoctorAISlowRequests",
                tg.metrics.target_response_time(period=five, statistic="p99"),
                gt,
                2.5,
                3,
                "p99 request time over 2.5 s for 15 min",
                mirrors=True,
            ),
            _Alarm(
                "DoctorAIDatabaseCpu",
                db.metric_cpu_utilization(period=five),
                gt,
                80,
                3,
                "PostgreSQL CPU over 80% for 15 min",
            ),
            _Alarm(
                "DoctorAIDatabaseStorage",
                db.metric_free_storage_space(period=five),
                lt,
                10 * 1024**3,
                1,
                "under 10 GiB of free PostgreSQL storage",
                missing_breaches=True,
            ),
        ]
        action = cw_actions.SnsAction(topic)
        for spec in specs:
            alarm = cw.Alarm(
                self,
                spec.name,
                metric=spec.metric,
                threshold=spec.threshold,
                evaluation_periods=spec.periods,
                comparison_operator=spec.op,
                treat_missing_data=cw.TreatMissingData.BREACHING
                if spec.missing_breaches
                else cw.TreatMissingData.NOT_BREACHING,
                alarm_description=spec.text
                + (" (as deploy/prometheus/alerts.yml)" if spec.mirrors else " (CloudWatch only)"),
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)


@dataclass(frozen=True)
class _Alarm:
    """One CloudWatch alarm: what, when, and whether Prometheus has the same alert."""

    name: str
    metric: cw.IMetric
    op: cw.ComparisonOperator
    threshold: float
    periods: int
    text: str
    mirrors: bool = False
    missing_breaches: bool = False
