"""Conformance of the agentcore-emulator binary with boto3 and the AWS CLI.

The emulator binary is started as a subprocess on a free port; set AGENTCORE_EMULATOR_BIN to
use a binary other than target/debug/agentcore-emulator. Run through run.sh.
"""

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("AGENTCORE_EMULATOR_BIN", str(REPO / "target" / "debug" / "agentcore-emulator"))
REGION = "us-west-2"
KMS_KEY = "arn:aws:kms:us-west-2:123456789012:key/0123abcd-4567-89ef-0123-456789abcdef"
ONLINE_CONFIG = "arn:aws:bedrock-agentcore:us-west-2:123456789012:online-evaluation-config/nightly-AbCdE12345"
RUNTIME_ENDPOINT = (
    "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/checkout-AbCdE12345/runtime-endpoint/prod"
)
WAIT_SECONDS = 15
CLOUDWATCH = {"cloudWatchLogs": {"serviceNames": ["checkout-agent"], "logGroupNames": ["/aws/agents/checkout"]}}


class Emulator:
    """A running emulator binary."""

    def __init__(self, *flags, log=None):
        """`log`: a file for stderr, the emulator then logging at trace level."""
        self.stderr = open(log or os.devnull, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, RUST_LOG="trace") if log else None
        self.proc = subprocess.Popen(
            [BIN, "--listen", "127.0.0.1:0", "--seed", "3", *flags],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r} (exit {self.proc.wait()})")
        self.url = match.group(1)

    def stop(self):
        """SIGTERM, and the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.stderr.close()

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request) as response:
                text = response.read().decode()
                return response.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def faults(self, config):
        status, body = self.admin("PUT", "faults", config)
        assert status == 200, body

    def client(self, region=REGION, attempts=1, read_timeout=10):
        return boto3.client(
            "bedrock-agentcore",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(
                retries={"total_max_attempts": attempts, "mode": "standard"},
                read_timeout=read_timeout,
                connect_timeout=5,
            ),
        )


@pytest.fixture(scope="session")
def emulator():
    emu = Emulator("--job-duration", "400ms", "--stop-duration", "100ms", "--delete-duration", "100ms")
    yield emu
    assert emu.stop() == 0, "clean exit on SIGTERM"


@pytest.fixture
def emu(emulator):
    """The shared emulator, reset before each test."""
    status, _ = emulator.admin("POST", "reset")
    assert status == 204
    return emulator


@pytest.fixture
def client(emu):
    return emu.client()


def script(operation, *steps):
    return {operation: {"script": list(steps)}}


def wait_for(client, job_id, status):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        got = client.get_batch_evaluation(batchEvaluationId=job_id)
        if got["status"] == status:
            return got
        assert time.monotonic() < deadline, f"{job_id} never reached {status}; last {got['status']}"
        time.sleep(0.01)


def wait_gone(client, job_id):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            got = client.get_batch_evaluation(batchEvaluationId=job_id)
        except client.exceptions.ResourceNotFoundException:
            return
        assert time.monotonic() < deadline, f"{job_id} still {got['status']}"
        time.sleep(0.01)


def start(client, name, **extra):
    return client.start_batch_evaluation(batchEvaluationName=name, dataSourceConfig=CLOUDWATCH, **extra)


def test_every_operation_and_field_round_trips(emu, client):
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    t1 = dt.datetime(2026, 1, 2, 12, 30, tzinfo=dt.timezone.utc)
    data_source = {
        "cloudWatchLogs": {
            "serviceNames": ["checkout-agent"],
            "logGroupNames": ["/aws/agents/checkout"],
            "filterConfig": {
                "sessionIds": ["session-1", "session-2"],
                "timeRange": {"startTime": t0, "endTime": t1},
                "sessionTraceIds": [{"sessionId": "session-1", "traceIds": ["0123456789abcdef0123456789abcdef"]}],
            },
        }
    }
    output = {
        "cloudWatchConfig": {
            "logGroupName": "/aws/evaluations/results",
            "logStreamName": "nightly",
            "metricsNamespace": "Evals/Checkout",
            "resultDestination": "DEDICATED_LOG_GROUP",
        }
    }
    dataset = {
        "dataset": {"datasetId": "golden_set", "datasetVersion": "3"},
        "agentInvocation": {"agentCoreRuntime": {"agentRuntimeEndpointArn": RUNTIME_ENDPOINT, "requestTemplate": "{}"}},
    }
    metadata = {
        "sessionMetadata": [
            {
                "sessionId": "session-1",
                "testScenarioId": "scenario-a",
                "metadata": {"channel": "web"},
                "groundTruth": {
                    "inline": {
                        "assertions": [{"text": "The agent confirms the order"}],
                        "expectedTrajectory": {"toolNames": ["lookup_order"]},
                        "turns": [{"input": {"prompt": "Where is my order?"}, "expectedResponse": {"text": "Tomorrow"}}],
                    }
                },
            },
            {"sessionId": "session-2"},
        ]
    }
    started = client.start_batch_evaluation(
        batchEvaluationName="full_round_trip",
        description="every member",
        evaluators=[{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "ThirdParty.acme.tone"}],
        insights=[{"insightId": "Builtin.FailureAnalysis"}],
        dataSourceConfig=data_source,
        evaluationMetadata=metadata,
        outputConfig=output,
        datasetExecutionConfig=dataset,
        kmsKeyArn=KMS_KEY,
        tags={"team": "evals", "emulator:job-duration": "10m"},
        clientToken="round-trip-" + "0" * 30,
    )
    assert started["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert started["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert started["status"] == "PENDING"
    assert started["outputConfig"] == output
    assert started["tags"] == {"team": "evals", "emulator:job-duration": "10m"}
    job_id = started["batchEvaluationId"]
    assert re.fullmatch(r"full_round_trip-[a-zA-Z0-9]{10}", job_id)
    assert started["batchEvaluationArn"] == f"arn:aws:bedrock-agentcore:{REGION}:123456789012:batch-evaluation/{job_id}"

    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["dataSourceConfig"] == data_source
    assert got["outputConfig"] == output
    assert got["evaluators"] == started["evaluators"]
    assert got["insights"] == [{"insightId": "Builtin.FailureAnalysis"}]
    assert got["kmsKeyArn"] == KMS_KEY
    assert got["description"] == "every member"
    assert got["createdAt"] == started["createdAt"]
    assert got["datasetExecutionDetails"]["dataset"] == {"datasetId": "golden_set", "datasetVersion": "3"}
    assert got["datasetExecutionDetails"]["agentInvocation"]["agentCoreRuntime"]["agentRuntimeVersion"] == "1"

    listed = client.list_batch_evaluations()
    assert [s["batchEvaluationId"] for s in listed["batchEvaluations"]] == [job_id]
    assert "nextToken" not in listed

    stopped = client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert stopped["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert stopped["status"] == "STOPPING"
    stopped_job = wait_for(client, job_id, "STOPPED")
    assert stopped_job["evaluationResults"]["totalNumberOfSessions"] == 2, "sessions from evaluationMetadata"
    deleted = client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleted["status"] == "DELETING"
    wait_gone(client, job_id)

    _, stats = emu.admin("GET", "stats")
    assert stats["StartBatchEvaluation"] == {"202": 1}
    assert stats["DeleteBatchEvaluation"] == {"202": 1}


@pytest.mark.parametrize(
    "outcome,failed,details",
    [("COMPLETED", 0, 0), ("COMPLETED_WITH_ERRORS", 2, 1), ("FAILED", 10, 1)],
)
def test_jobs_reach_the_tagged_outcome(client, outcome, failed, details):
    started = start(
        client,
        f"outcome_{outcome.lower()}",
        evaluators=[{"evaluatorId": "Builtin.Correctness"}],
        tags={"emulator:outcome": outcome},
    )
    assert started["status"] == "PENDING"
    order = ["PENDING", "IN_PROGRESS", outcome]
    seen = []
    deadline = time.monotonic() + WAIT_SECONDS
    while not seen or seen[-1] != outcome:
        got = client.get_batch_evaluation(batchEvaluationId=started["batchEvaluationId"])
        if not seen or seen[-1] != got["status"]:
            seen.append(got["status"])
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen), seen
    results = got["evaluationResults"]
    assert results["totalNumberOfSessions"] == 10
    assert results["numberOfSessionsFailed"] == failed
    assert results["evaluatorSummaries"][0]["evaluatorId"] == "Builtin.Correctness"
    assert len(got.get("errorDetails", [])) == details
    if outcome == "COMPLETED":
        assert 0.0 <= results["evaluatorSummaries"][0]["statistics"]["averageScore"] <= 1.0


def test_stop_repeats_while_stopping_and_running_jobs_cannot_be_deleted(client):
    job_id = start(client, "stoppable", tags={"emulator:job-duration": "10m", "emulator:stop-duration": "10m"})[
        "batchEvaluationId"
    ]
    wait_for(client, job_id, "IN_PROGRESS")
    with pytest.raises(client.exceptions.ConflictException) as conflict:
        client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert conflict.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert client.stop_batch_evaluation(batchEvaluationId=job_id)["status"] == "STOPPING"
    assert client.stop_batch_evaluation(batchEvaluationId=job_id)["status"] == "STOPPING"
    with pytest.raises(client.exceptions.ConflictException):
        client.delete_batch_evaluation(batchEvaluationId=job_id)


def test_deleting_jobs_refuse_stop_and_delete(client):
    job_id = start(client, "deleting", tags={"emulator:job-duration": "0s", "emulator:delete-duration": "10m"})[
        "batchEvaluationId"
    ]
    assert client.delete_batch_evaluation(batchEvaluationId=job_id)["status"] == "DELETING"
    with pytest.raises(client.exceptions.ConflictException):
        client.delete_batch_evaluation(batchEvaluationId=job_id)
    with pytest.raises(client.exceptions.ConflictException):
        client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "DELETING"


def test_stopped_jobs_are_deleted_and_then_gone(emu, client):
    job_id = start(client, "full_cycle", tags={"emulator:job-duration": "10m"})["batchEvaluationId"]
    wait_for(client, job_id, "IN_PROGRESS")
    assert client.stop_batch_evaluation(batchEvaluationId=job_id)["status"] == "STOPPING"
    wait_for(client, job_id, "STOPPED")
    with pytest.raises(client.exceptions.ConflictException):
        client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert client.delete_batch_evaluation(batchEvaluationId=job_id)["status"] == "DELETING"
    wait_gone(client, job_id)
    assert all(s["batchEvaluationId"] != job_id for s in client.list_batch_evaluations()["batchEvaluations"])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.stop_batch_evaluation(batchEvaluationId=job_id)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_batch_evaluation(batchEvaluationId=job_id)
    _, jobs = emu.admin("GET", "jobs")
    (job,) = jobs["jobs"]
    assert job["status"] == "GONE" and job["deletedAt"]
    assert (job["stopCalls"], job["deleteCalls"]) == (3, 2), "every call naming the job"


def test_client_token_makes_start_idempotent(emu, client):
    token = "idem-" + "1" * 40
    first = start(client, "idem", clientToken=token)
    again = start(client, "idem", clientToken=token)
    assert again["batchEvaluationId"] == first["batchEvaluationId"]
    with pytest.raises(client.exceptions.ValidationException) as mismatch:
        start(client, "idem", clientToken=token, description="different")
    assert mismatch.value.response["reason"] == "IdempotentParameterMismatchException"
    assert mismatch.value.response["fieldList"][0]["name"] == "clientToken"
    _, jobs = emu.admin("GET", "jobs")
    assert len(jobs["jobs"]) == 1
    start(client, "auto_token")
    _, jobs = emu.admin("GET", "jobs")
    assert len(jobs["jobs"][1]["clientToken"]) >= 33, "boto3 fills the idempotency token"


def test_names_are_unique_among_live_jobs(client):
    first = start(client, "taken", tags={"emulator:job-duration": "0s"})
    with pytest.raises(client.exceptions.ConflictException):
        start(client, "taken")
    client.delete_batch_evaluation(batchEvaluationId=first["batchEvaluationId"])
    wait_gone(client, first["batchEvaluationId"])
    assert start(client, "taken")["batchEvaluationId"] != first["batchEvaluationId"]


def test_validation_errors_name_the_field(emu, client):
    with pytest.raises(client.exceptions.ValidationException) as too_many:
        start(client, "too_many", evaluators=[{"evaluatorId": f"Builtin.E{i}"} for i in range(11)])
    response = too_many.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["reason"] == "FieldValidationFailed"
    assert response["fieldList"] == [
        {
            "name": "evaluators",
            "message": "Value at 'evaluators' failed to satisfy constraint: Member must have length less than or equal to 10",
        }
    ]
    with pytest.raises(client.exceptions.ValidationException) as several:
        client.start_batch_evaluation(
            batchEvaluationName="bad-name",
            dataSourceConfig={"cloudWatchLogs": {"serviceNames": ["a", "b"], "logGroupNames": ["/ok"]}},
            outputConfig={"cloudWatchConfig": {"logStreamName": "no:colons*"}},
            tags={"emulator:outcome": "SOMETIMES"},
        )
    names = [f["name"] for f in several.value.response["fieldList"]]
    assert names == [
        "batchEvaluationName",
        "dataSourceConfig.cloudWatchLogs.serviceNames",
        "outputConfig.cloudWatchConfig.logStreamName",
    ]
    with pytest.raises(client.exceptions.ValidationException) as bad_tag:
        start(client, "bad_tag", tags={"emulator:outcome": "SOMETIMES"})
    assert bad_tag.value.response["fieldList"][0]["name"] == "tags.emulator:outcome"
    with pytest.raises(client.exceptions.ValidationException) as bad_id:
        client.get_batch_evaluation(batchEvaluationId="no spaces allowed")
    assert bad_id.value.response["fieldList"][0]["name"] == "batchEvaluationId"
    with pytest.raises(client.exceptions.ValidationException):
        client.list_batch_evaluations(maxResults=101)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_batch_evaluation(batchEvaluationId="missing-AbCdE12345")
    _, jobs = emu.admin("GET", "jobs")
    assert jobs["jobs"] == []


@pytest.mark.parametrize(
    "code,status",
    [
        ("ValidationException", 400),
        ("UnauthorizedException", 401),
        ("ServiceQuotaExceededException", 402),
        ("AccessDeniedException", 403),
        ("ThrottlingException", 429),
        ("InternalServerException", 500),
    ],
)
def test_injected_errors_are_modeled_exceptions(emu, client, code, status):
    emu.faults(script("StartBatchEvaluation", {"action": "error", "error": code, "times": 1}))
    with pytest.raises(getattr(client.exceptions, code)) as raised:
        start(client, "injected")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert raised.value.response["Error"]["Code"] == code
    assert start(client, "injected")["status"] == "PENDING", "one step, then normal service"


def test_always_forbidden_until_cleared(emu, client):
    emu.faults(script("ListBatchEvaluations", {"action": "error", "error": "AccessDeniedException"}))
    for _ in range(3):
        with pytest.raises(client.exceptions.AccessDeniedException):
            client.list_batch_evaluations()
    status, _ = emu.admin("DELETE", "faults")
    assert status == 200
    assert client.list_batch_evaluations()["batchEvaluations"] == []


def test_boto3_retries_through_throttling(emu):
    emu.faults(script("GetBatchEvaluation", {"action": "error", "error": "ThrottlingException", "times": 2}))
    client = emu.client(attempts=3)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.get_batch_evaluation(batchEvaluationId="missing-AbCdE12345")
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    _, stats = emu.admin("GET", "stats")
    assert stats["GetBatchEvaluation"] == {"ThrottlingException": 2, "ResourceNotFoundException": 1}


def test_dropped_connection_after_start_then_idempotent_retry(emu, client):
    emu.faults(script("StartBatchEvaluation", {"action": "drop", "afterAction": True, "times": 1}))
    token = "lost-" + "2" * 40
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        start(client, "lost_answer", clientToken=token)
    _, jobs = emu.admin("GET", "jobs")
    (job,) = jobs["jobs"]
    assert start(client, "lost_answer", clientToken=token)["batchEvaluationId"] == job["id"]
    _, stats = emu.admin("GET", "stats")
    assert stats["StartBatchEvaluation"] == {"ConnectionDropped": 1, "202": 1}


def test_held_response_times_out_the_client(emu):
    emu.faults(script("StartBatchEvaluation", {"action": "hold", "duration": "3s", "times": 1}))
    impatient = emu.client(read_timeout=0.5)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        start(impatient, "in_flight")
    _, jobs = emu.admin("GET", "jobs")
    assert [j["name"] for j in jobs["jobs"]] == ["in_flight"], "the job exists although the client gave up"


def test_malformed_responses(emu, client):
    job_id = start(client, "malformed")["batchEvaluationId"]
    emu.faults(
        script(
            "GetBatchEvaluation",
            {"action": "malformed", "kind": "unknownStatus", "times": 1},
            {"action": "malformed", "kind": "missingRequired", "times": 1},
            {"action": "malformed", "kind": "invalidJson", "times": 1},
        )
    )
    # boto3 does not validate responses: it passes unknown enum values through, leaves out
    # missing members, and answers an unreadable 200 body with an empty result.
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "ARCHIVED"
    assert "batchEvaluationId" not in client.get_batch_evaluation(batchEvaluationId=job_id)
    broken = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert "status" not in broken and broken["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "PENDING"


def test_paginator_walks_120_jobs(client):
    created = {start(client, f"page_{i:03}", tags={"emulator:job-duration": "10m"})["batchEvaluationId"] for i in range(120)}
    pages = list(client.get_paginator("list_batch_evaluations").paginate(PaginationConfig={"PageSize": 25}))
    assert [len(p["batchEvaluations"]) for p in pages] == [25, 25, 25, 25, 20]
    assert "nextToken" not in pages[-1]
    listed = [s["batchEvaluationId"] for p in pages for s in p["batchEvaluations"]]
    assert len(listed) == 120 and set(listed) == created
    first = client.list_batch_evaluations()
    assert len(first["batchEvaluations"]) == 50 and "nextToken" in first


def test_jobs_are_regional(emu, client):
    started = start(client, "regional")
    assert ":us-west-2:" in started["batchEvaluationArn"]
    frankfurt = emu.client(region="eu-central-1")
    with pytest.raises(frankfurt.exceptions.ResourceNotFoundException):
        frankfurt.get_batch_evaluation(batchEvaluationId=started["batchEvaluationId"])
    assert frankfurt.list_batch_evaluations()["batchEvaluations"] == []


def test_active_job_quota_is_a_modeled_402():
    emu = Emulator("--job-duration", "10m", "--stop-duration", "10m", "--max-active-jobs", "1")
    try:
        client = emu.client()
        token = "quota-" + "1" * 40
        first = start(client, "quota_a", clientToken=token)
        with pytest.raises(client.exceptions.ServiceQuotaExceededException) as raised:
            start(client, "quota_b")
        error = raised.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 402
        assert error["Error"]["Code"] == "ServiceQuotaExceededException"
        assert error["Error"]["Message"]
        assert isinstance(raised.value, botocore.exceptions.ClientError)
        # The idempotent retry of the started job is answered with it, not with 402.
        assert start(client, "quota_a", clientToken=token)["batchEvaluationId"] == first["batchEvaluationId"]
        # Another region has its own quota.
        assert start(emu.client(region="eu-central-1"), "quota_b")["status"] == "PENDING"
        status, quota = emu.admin("GET", "quota")
        assert status == 200 and quota["maxActiveJobs"] == 1
        usage = {(u["account"], u["region"]): u for u in quota["usage"]}
        assert usage[("123456789012", REGION)]["peakActive"] == 1
        assert usage[("123456789012", REGION)]["active"] == 1
        # Raised at run time, the quota lets the next Start through.
        status, quota = emu.admin("PUT", "quota", {"maxActiveJobs": 2})
        assert status == 200 and quota["maxActiveJobs"] == 2
        assert start(client, "quota_b")["status"] == "PENDING"
        _, quota = emu.admin("GET", "quota")
        assert {(u["region"], u["peakActive"]) for u in quota["usage"]} == {(REGION, 2), ("eu-central-1", 1)}
        status, _ = emu.admin("PUT", "quota", {"maxActiveJobs": -1})
        assert status == 400
        status, quota = emu.admin("PUT", "quota", {"maxActiveJobs": None})
        assert status == 200 and quota["maxActiveJobs"] is None
    finally:
        assert emu.stop() == 0


TENANT_A = "arn:aws:iam::111111111111:role/tenant-a"
TENANT_B = "arn:aws:iam::222222222222:role/tenant-b"


def sts_client(emu, **credentials):
    keys = credentials or {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return boto3.client("sts", endpoint_url=emu.url, region_name=REGION, **keys)


def as_role(emu, role, session, **params):
    """An AgentCore client with the credentials of an AssumeRole through the emulator's STS."""
    assumed = sts_client(emu).assume_role(RoleArn=role, RoleSessionName=session, **params)
    creds = assumed["Credentials"]
    client = boto3.client(
        "bedrock-agentcore",
        endpoint_url=emu.url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    return assumed, client


def test_assume_role_then_agentcore_lands_in_the_role_account(emu, client):
    assumed, tenant = as_role(emu, TENANT_A, "ns-tenant-a", DurationSeconds=900)
    assert assumed["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111111111111:assumed-role/tenant-a/ns-tenant-a"
    assert assumed["AssumedRoleUser"]["AssumedRoleId"].endswith(":ns-tenant-a")
    creds = assumed["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    lifetime = creds["Expiration"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(seconds=880) < lifetime <= dt.timedelta(seconds=900)

    started = start(tenant, "tenant_job")
    assert ":111111111111:batch-evaluation/" in started["batchEvaluationArn"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_batch_evaluation(batchEvaluationId=started["batchEvaluationId"])
    _, other = as_role(emu, TENANT_B, "ns-tenant-b")
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        other.delete_batch_evaluation(batchEvaluationId=started["batchEvaluationId"])
    assert other.list_batch_evaluations()["batchEvaluations"] == []
    mine = tenant.get_batch_evaluation(batchEvaluationId=started["batchEvaluationId"])
    assert mine["batchEvaluationArn"] == started["batchEvaluationArn"]

    identity = sts_client(
        emu,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    assert identity["Account"] == "111111111111"
    assert sts_client(emu).get_caller_identity()["Account"] == "123456789012"

    status, jobs = emu.admin("GET", "jobs?account=111111111111")
    assert status == 200
    assert [(j["name"], j["startedBy"]) for j in jobs["jobs"]] == [("tenant_job", assumed["AssumedRoleUser"]["Arn"])]
    _, jobs = emu.admin("GET", "jobs?account=222222222222")
    assert jobs["jobs"] == []
    _, report = emu.admin("GET", "sts")
    (session,) = [s for s in report["sessions"] if s["roleArn"] == TENANT_A]
    assert session["account"] == "111111111111" and session["roleSessionName"] == "ns-tenant-a"
    assert session["calls"] == {"StartBatchEvaluation": 1, "GetBatchEvaluation": 1}
    text = json.dumps(report)
    assert creds["SecretAccessKey"] not in text and creds["SessionToken"] not in text
    assert creds["AccessKeyId"] not in text


def test_sts_errors_are_query_error_responses(emu):
    sts = sts_client(emu)
    # botocore checks DurationSeconds' range itself; the pattern and the ARN are the service's.
    cases = [
        ({"RoleArn": "arn:aws:iam::111111111111:user/someone", "RoleSessionName": "s1"}, "ValidationError", 400),
        ({"RoleArn": TENANT_A, "RoleSessionName": "no spaces"}, "ValidationError", 400),
    ]
    for params, code, status in cases:
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            sts.assume_role(**params)
        assert raised.value.response["Error"]["Code"] == code, params
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # Role chaining is limited to an hour.
    creds = sts.assume_role(RoleArn=TENANT_A, RoleSessionName="first")["Credentials"]
    chained = sts_client(
        emu,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        chained.assume_role(RoleArn=TENANT_B, RoleSessionName="chained", DurationSeconds=7200)
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "role chaining" in raised.value.response["Error"]["Message"]
    status, _ = emu.admin("PUT", "sts", {"assumableRoles": [TENANT_A]})
    assert status == 200
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sts.assume_role(RoleArn=TENANT_B, RoleSessionName="denied")
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert sts.assume_role(RoleArn=TENANT_A, RoleSessionName="granted")["Credentials"]["AccessKeyId"]


def test_expired_session_credentials_get_expired_token_exception():
    emu = Emulator("--max-session-lifetime", "1s")
    try:
        _, tenant = as_role(emu, TENANT_A, "short-lived")
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                tenant.list_batch_evaluations()
            except botocore.exceptions.ClientError as e:
                error = e.response
                break
            assert time.monotonic() < deadline, "the credentials never expired"
            time.sleep(0.05)
        assert error["Error"]["Code"] == "ExpiredTokenException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
        # Fresh credentials work again, in the same account.
        _, renewed = as_role(emu, TENANT_A, "short-lived")
        assert ":111111111111:" in start(renewed, "after_refresh")["batchEvaluationArn"]
    finally:
        assert emu.stop() == 0


def test_no_credential_in_the_logs_even_at_trace(tmp_path):
    log = tmp_path / "emulator.log"
    emu = Emulator(log=log)
    try:
        base = {"aws_access_key_id": "AKIDBASEKEYSCAN01", "aws_secret_access_key": "base-secret-scan-value"}
        assumed = sts_client(emu, **base).assume_role(RoleArn=TENANT_A, RoleSessionName="scan")
        issued = [assumed["Credentials"]]
        second, tenant = as_role(emu, TENANT_A, "scan-2")
        issued.append(second["Credentials"])
        start(tenant, "scanned")
        tenant.list_batch_evaluations()
    finally:
        assert emu.stop() == 0
    text = log.read_text()
    assert "sts request" in text and "ListBatchEvaluations" in text, "the log was written"
    secrets = [*base.values()]
    for creds in issued:
        secrets += [creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]]
    for secret in secrets:
        assert secret not in text


def test_fault_flags_on_the_command_line(tmp_path):
    config = tmp_path / "faults.json"
    config.write_text(json.dumps({"GetBatchEvaluation": {"errorRate": {"rate": 1.0, "error": "AccessDeniedException"}}}))
    emu = Emulator(
        "--fault-config", str(config),
        "--script", "StartBatchEvaluation=2*error:InternalServerException,1*drop",
        "--latency", "ListBatchEvaluations=50ms",
    )  # fmt: skip
    try:
        client = emu.client()
        for _ in range(2):
            with pytest.raises(client.exceptions.InternalServerException):
                start(client, "flagged")
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            start(client, "flagged")
        job_id = start(client, "flagged")["batchEvaluationId"]
        with pytest.raises(client.exceptions.AccessDeniedException):
            client.get_batch_evaluation(batchEvaluationId=job_id)
        began = time.monotonic()
        client.list_batch_evaluations()
        assert time.monotonic() - began >= 0.05
        _, faults = emu.admin("GET", "faults")
        assert "script" not in faults.get("StartBatchEvaluation", {}), "script used up"
        assert faults["ListBatchEvaluations"]["latency"] == "50ms"
    finally:
        assert emu.stop() == 0


def test_bad_flags_fail_fast():
    result = subprocess.run(
        [BIN, "--listen", "127.0.0.1:0", "--error-rate", "StartBatch=2"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "StartBatch" in result.stderr


AWS_CLI = shutil.which("aws", path=str(Path(sys.executable).parent))


def test_aws_cli(emu, tmp_path):
    # requirements.txt pins the AWS CLI into this virtualenv (run.sh installs it): a missing CLI
    # is a broken setup, never a reason to pass without testing it.
    assert AWS_CLI is not None, f"no `aws` next to {sys.executable}: run emulator/conformance/run.sh"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    common = ["--endpoint-url", emu.url, "--region", REGION, "--output", "json"]

    def aws(*args):
        done = subprocess.run([AWS_CLI, "bedrock-agentcore", *args, *common], capture_output=True, text=True, env=env, timeout=60)
        return done.returncode, done.stdout, done.stderr

    code, out, err = aws("list-batch-evaluations")
    assert code == 0, err
    assert json.loads(out) == {"batchEvaluations": []}

    request = tmp_path / "start.json"
    request.write_text(
        json.dumps(
            {
                "batchEvaluationName": "from_cli",
                "evaluators": [{"evaluatorId": "Builtin.Helpfulness"}],
                "dataSourceConfig": CLOUDWATCH,
                "tags": {"emulator:outcome": "FAILED"},
            }
        )
    )
    code, out, err = aws("start-batch-evaluation", "--cli-input-json", f"file://{request}")
    assert code == 0, err
    started = json.loads(out)
    assert started["status"] == "PENDING"
    code, out, err = aws("get-batch-evaluation", "--batch-evaluation-id", started["batchEvaluationId"])
    assert code == 0, err
    assert json.loads(out)["batchEvaluationName"] == "from_cli"
    code, out, err = aws("get-batch-evaluation", "--batch-evaluation-id", "missing-AbCdE12345")
    assert code != 0 and "ResourceNotFoundException" in err
