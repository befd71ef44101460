# Sketch of the AWS deployment: ECS Fargate behind an HTTPS ALB, RDS PostgreSQL, S3 for model
# packages, Secrets Manager for the DB URL and JWT secret. Never applied or planned; only
# `terraform fmt -check` ran (no provider download, no AWS access). Review VPC, sizing, backups, WAF.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.0" }
  }
}

variable "region" { type = string }
variable "vpc_id" { type = string }
variable "private_subnet_ids" { type = list(string) }
variable "public_subnet_ids" { type = list(string) }
variable "certificate_arn" { type = string }
variable "image" { type = string } # ECR image of deploy/Dockerfile
variable "db_password" {
  type      = string
  sensitive = true
}

provider "aws" { region = var.region }
data "aws_caller_identity" "me" {}

# --- model packages ------------------------------------------------------------------------
resource "aws_s3_bucket" "models" {
  bucket = "doctorai-models-${data.aws_caller_identity.me.account_id}"
}
resource "aws_s3_bucket_versioning" "models" {
  bucket = aws_s3_bucket.models.id
  versioning_configuration { status = "Enabled" }
}
resource "aws_s3_bucket_server_side_encryption_configuration" "models" {
  bucket = aws_s3_bucket.models.id
  rule {
    apply_server_side_encryption_by_default { sse_algorithm = "aws:kms" }
  }
}
resource "aws_s3_bucket_public_access_block" "models" {
  bucket                  = aws_s3_bucket.models.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# --- database ------------------------------------------------------------------------------
resource "aws_security_group" "db" {
  vpc_id = var.vpc_id
  ingress {
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_security_group.app.id]
  }
}
resource "aws_db_subnet_group" "db" { subnet_ids = var.private_subnet_ids }
resource "aws_db_instance" "db" {
  identifier                = "doctorai-backend"
  engine                    = "postgres"
  engine_version            = "15"
  instance_class            = "db.t4g.medium"
  allocated_storage         = 50
  storage_encrypted         = true
  multi_az                  = true
  db_name                   = "doctorai"
  username                  = "doctorai"
  password                  = var.db_password
  db_subnet_group_name      = aws_db_subnet_group.db.name
  vpc_security_group_ids    = [aws_security_group.db.id]
  backup_retention_period   = 14
  deletion_protection       = true
  final_snapshot_identifier = "doctorai-backend-final"
}
resource "aws_secretsmanager_secret" "db_url" { name = "doctorai/db-url" }
resource "aws_secretsmanager_secret_version" "db_url" {
  secret_id     = aws_secretsmanager_secret.db_url.id
  secret_string = "postgresql+psycopg://doctorai:${var.db_password}@${aws_db_instance.db.address}:5432/doctorai?sslmode=verify-full"
}
resource "aws_secretsmanager_secret" "jwt" { name = "doctorai/jwt-secret" } # value set out of band
# the bearer token Prometheus sends to /metrics; value set out of band
resource "aws_secretsmanager_secret" "metrics" { name = "doctorai/metrics-token" }

# --- service -------------------------------------------------------------------------------
resource "aws_security_group" "alb" {
  vpc_id = var.vpc_id
  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
resource "aws_security_group" "app" {
  vpc_id = var.vpc_id
  ingress {
    from_port       = 8080
    to_port         = 8080
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
resource "aws_lb" "api" {
  load_balancer_type = "application"
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.alb.id]
}
resource "aws_lb_target_group" "api" {
  port        = 8080
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  health_check { path = "/healthz" }
}
resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}
resource "aws_cloudwatch_log_group" "api" {
  name              = "/ecs/doctorai-backend"
  retention_in_days = 90
}
resource "aws_ecs_cluster" "main" { name = "doctorai" }
# The task definition is deploy/aws/ecs-task-definition.json with ACCOUNT_ID/REGION/VERSION
# filled in; IAM: the task role may s3:GetObject/PutObject on the bucket and read the secrets.
resource "aws_ecs_service" "api" {
  name            = "doctorai-backend"
  cluster         = aws_ecs_cluster.main.id
  task_definition = "doctorai-backend"
  desired_count   = 2
  launch_type     = "FARGATE"
  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = [aws_security_group.app.id]
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "backend"
    container_port   = 8080
  }
}
output "api_url" { value = "https://${aws_lb.api.dns_name}/api/v1" }
