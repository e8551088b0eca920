//! Wire-level checks that an SDK hides: headers, the error envelope, JSON shapes, the region
//! taken from the signature, connections really being cut, and the `/_emulator/` admin API.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use agentcore_emulator::{EmulatorConfig, RunningEmulator};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIGV4_WEST: &str = "AWS4-HMAC-SHA256 Credential=AKIDEMULATOR/20260102/us-west-2/bedrock-agentcore/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000";

async fn emulator() -> RunningEmulator {
    agentcore_emulator::start(EmulatorConfig {
        job_duration: Duration::from_secs(600),
        delete_duration: Duration::ZERO,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

struct Http {
    client: Client,
    base: String,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Http {
    fn new(emulator: &RunningEmulator) -> Self {
        Http {
            client: Client::new(),
            base: emulator.endpoint_url(),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", SIGV4_WEST);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("response");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("body"),
        }
    }

    async fn start(&self, body: Value) -> Reply {
        self.send(
            Method::POST,
            "/evaluations/batch-evaluate",
            Some(&body.to_string()),
        )
        .await
    }
}

fn minimal(name: &str) -> Value {
    json!({
        "batchEvaluationName": name,
        "dataSourceConfig": { "cloudWatchLogs": { "serviceNames": ["svc"] } }
    })
}

fn is_iso_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok())
}

#[tokio::test]
async fn responses_follow_rest_json1() {
    let emu = emulator().await;
    let http = Http::new(&emu);

    let mut body = minimal("wire");
    body["someFutureMember"] = json!({ "ignored": true });
    body["description"] = Value::Null;
    let started = http.start(body).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    assert!(
        started
            .header("x-amzn-requestid")
            .is_some_and(|id| id.len() == 36)
    );
    assert_eq!(started.header("content-type"), Some("application/json"));
    let started = started.json();
    assert!(started.get("someFutureMember").is_none());
    assert!(
        started.get("description").is_none(),
        "null members are absent, not null"
    );
    assert!(
        is_iso_utc(&started["createdAt"]),
        "{}",
        started["createdAt"]
    );
    assert_eq!(started["status"], "PENDING");
    let id = started["batchEvaluationId"].as_str().unwrap().to_owned();
    assert!(
        started["batchEvaluationArn"]
            .as_str()
            .unwrap()
            .contains(":us-west-2:123456789012:"),
        "the region comes from the credential scope"
    );

    let got = http
        .send(
            Method::GET,
            &format!("/evaluations/batch-evaluate/{id}"),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let got = got.json();
    assert_eq!(
        got["dataSourceConfig"],
        json!({ "cloudWatchLogs": { "serviceNames": ["svc"] } })
    );
    for absent in [
        "outputConfig",
        "evaluators",
        "insights",
        "errorDetails",
        "kmsKeyArn",
    ] {
        assert!(
            got.get(absent).is_none(),
            "{absent} is left out, never {{}} or null"
        );
    }
    assert!(is_iso_utc(&got["updatedAt"]));

    let listed = http
        .send(
            Method::GET,
            "/evaluations/batch-evaluate?maxResults=1",
            None,
        )
        .await
        .json();
    assert_eq!(listed["batchEvaluations"].as_array().map(Vec::len), Some(1));
    assert!(
        listed.get("nextToken").is_none(),
        "no token on the last page"
    );

    // Without a signature the default region applies, and that region has no jobs.
    let unsigned = http
        .client
        .get(format!("{}/evaluations/batch-evaluate", http.base))
        .send()
        .await
        .unwrap();
    let unsigned: Value = unsigned.json().await.unwrap();
    assert_eq!(
        unsigned,
        json!({ "batchEvaluations": [] }),
        "batchEvaluations is always present"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_carry_code_header_and_envelope() {
    let emu = emulator().await;
    let http = Http::new(&emu);

    let reply = http
        .send(
            Method::POST,
            "/evaluations/batch-evaluate",
            Some("{not json"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("ValidationException")
    );
    assert!(reply.header("x-amzn-requestid").is_some());
    let body = reply.json();
    assert_eq!(body["__type"], "ValidationException");
    assert_eq!(body["reason"], "CannotParse");

    let mut bad = minimal("bad");
    bad["dataSourceConfig"]["cloudWatchLogs"]["serviceNames"] = json!(["a", "b"]);
    bad["tags"] = json!({ "emulator:outcome": "MAYBE" });
    let body = http.start(bad).await.json();
    assert_eq!(body["reason"], "FieldValidationFailed");
    assert_eq!(
        body["fieldList"][0]["name"],
        "dataSourceConfig.cloudWatchLogs.serviceNames"
    );
    assert!(
        body["fieldList"][0]["message"]
            .as_str()
            .unwrap()
            .contains("serviceNames")
    );

    let mut bad_tag = minimal("bad_tag");
    bad_tag["tags"] = json!({ "emulator:outcome": "MAYBE" });
    let body = http.start(bad_tag).await.json();
    assert_eq!(body["fieldList"][0]["name"], "tags.emulator:outcome");

    let reply = http
        .send(
            Method::GET,
            "/evaluations/batch-evaluate/missing-AbCdE12345",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("missing-AbCdE12345")
    );

    let reply = http
        .send(Method::PATCH, "/evaluations/batch-evaluate", None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["__type"], "UnknownOperationException");
    assert!(reply.header("x-amzn-requestid").is_some());
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn dataset_execution_is_reported_as_details() {
    let emu = emulator().await;
    let http = Http::new(&emu);
    let mut body = minimal("dataset_run");
    body["datasetExecutionConfig"] = json!({
        "dataset": { "datasetId": "golden_set" },
        "agentInvocation": { "agentCoreRuntime": {
            "agentRuntimeEndpointArn": "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/checkout-AbCdE12345/runtime-endpoint/prod",
            "requestTemplate": "{\"prompt\": \"{{input}}\"}"
        } }
    });
    let started = http.start(body).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
    let id = started.json()["batchEvaluationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = http
        .send(
            Method::GET,
            &format!("/evaluations/batch-evaluate/{id}"),
            None,
        )
        .await
        .json();
    let details = &got["datasetExecutionDetails"];
    assert_eq!(
        details["dataset"],
        json!({ "datasetId": "golden_set", "datasetVersion": "DRAFT" })
    );
    assert_eq!(
        details["agentInvocation"]["agentCoreRuntime"]["agentRuntimeVersion"],
        "1"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn drop_really_closes_the_connection_without_a_response() {
    let emu = emulator().await;
    let http = Http::new(&emu);
    let faults =
        json!({ "ListBatchEvaluations": { "script": [{ "action": "drop", "times": 1 }] } });
    let reply = http
        .send(Method::PUT, "/_emulator/faults", Some(&faults.to_string()))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let mut socket = tokio::net::TcpStream::connect(emu.addr()).await.unwrap();
    socket
        .write_all(b"GET /evaluations/batch-evaluate HTTP/1.1\r\nhost: emulator\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => assert!(
            received.is_empty(),
            "got {:?}",
            String::from_utf8_lossy(&received)
        ),
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Err(_) => panic!("the connection stayed open"),
    }
    // The next request is served normally.
    let reply = http
        .send(Method::GET, "/evaluations/batch-evaluate", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_are_broken_as_asked() {
    let emu = emulator().await;
    let http = Http::new(&emu);
    http.start(minimal("m")).await;
    let faults = json!({ "ListBatchEvaluations": { "script": [
        { "action": "malformed", "kind": "unknownStatus", "times": 1 },
        { "action": "malformed", "kind": "missingRequired", "times": 1 },
        { "action": "malformed", "kind": "epochTimestamps", "times": 1 },
        { "action": "malformed", "kind": "invalidJson", "times": 1 }
    ] } });
    http.send(Method::PUT, "/_emulator/faults", Some(&faults.to_string()))
        .await;
    let list = || http.send(Method::GET, "/evaluations/batch-evaluate", None);
    assert_eq!(
        list().await.json()["batchEvaluations"][0]["status"],
        "ARCHIVED"
    );
    assert!(list().await.json().get("batchEvaluations").is_none());
    assert!(list().await.json()["batchEvaluations"][0]["createdAt"].is_i64());
    let broken = list().await;
    assert_eq!(broken.status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&broken.text).is_err());
    assert!(
        list().await.json()["batchEvaluations"][0]["status"] == "PENDING",
        "script used up"
    );
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn admin_api_reports_and_controls_the_emulator() {
    let emu = emulator().await;
    let http = Http::new(&emu);
    assert_eq!(
        http.send(Method::GET, "/_emulator/health", None)
            .await
            .json()["status"],
        "ok"
    );

    let started = http.start(minimal("admin")).await.json();
    let id = started["batchEvaluationId"].as_str().unwrap();
    http.send(
        Method::POST,
        &format!("/evaluations/batch-evaluate/{id}/stop"),
        None,
    )
    .await;

    let faults = json!({
        "StartBatchEvaluation": { "script": [{ "action": "error", "error": "InternalServerException", "times": 2 }] },
        "*": { "latency": "1ms" }
    });
    let reply = http
        .send(Method::PUT, "/_emulator/faults", Some(&faults.to_string()))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let current = reply.json();
    assert_eq!(current["StartBatchEvaluation"]["script"][0]["times"], 2);
    assert_eq!(
        current["GetBatchEvaluation"]["latency"], "1ms",
        "* applies to the others"
    );
    assert!(
        current["StartBatchEvaluation"].get("latency").is_none(),
        "an own entry replaces *"
    );

    let failed = http.start(minimal("admin2")).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.header("x-amzn-errortype"),
        Some("InternalServerException")
    );
    let current = http
        .send(Method::GET, "/_emulator/faults", None)
        .await
        .json();
    assert_eq!(
        current["StartBatchEvaluation"]["script"][0]["times"], 1,
        "one step left"
    );

    let rejected = http
        .send(
            Method::PUT,
            "/_emulator/faults",
            Some(r#"{"*": {"dropRate": 2}}"#),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    let rejected = http
        .send(Method::PUT, "/_emulator/faults", Some(r#"{"Nope": {}}"#))
        .await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);

    let cleared = http.send(Method::DELETE, "/_emulator/faults", None).await;
    assert_eq!(cleared.json(), json!({}));
    assert_eq!(
        http.start(minimal("admin3")).await.status,
        StatusCode::ACCEPTED
    );

    let stats = http
        .send(Method::GET, "/_emulator/stats", None)
        .await
        .json();
    assert_eq!(stats["StartBatchEvaluation"]["202"], 2);
    assert_eq!(stats["StartBatchEvaluation"]["InternalServerException"], 1);
    assert_eq!(stats["StopBatchEvaluation"]["202"], 1);
    assert!(
        stats.get("_emulator").is_none(),
        "admin calls are not counted"
    );

    // Raw requests carry no client token: the Stop counts under the job id, the Starts under
    // nothing; a retry (attempt 2 of the SDK's header) is an attempt only.
    let retried = http
        .client
        .post(format!(
            "{}/evaluations/batch-evaluate/{id}/stop",
            http.base
        ))
        .header("authorization", SIGV4_WEST)
        .header("amz-sdk-request", "attempt=2; max=3")
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let objects = http
        .send(Method::GET, "/_emulator/objects", None)
        .await
        .json();
    assert_eq!(
        objects,
        json!({ id: { "operations": { "StopBatchEvaluation": 1 }, "attempts": 2, "peakPerSecond": 1 } })
    );

    let jobs = http.send(Method::GET, "/_emulator/jobs", None).await.json();
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["id"], id);
    assert_eq!(jobs[0]["status"], "STOPPING");
    assert_eq!(jobs[0]["stopCalls"], 2);
    assert_eq!(jobs[0]["region"], "us-west-2");
    assert!(
        jobs[0]["clientToken"].is_null(),
        "raw requests without a token have none"
    );

    let reset = http.send(Method::POST, "/_emulator/reset", None).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert!(reset.header("x-amzn-requestid").is_some());
    assert_eq!(
        http.send(Method::GET, "/_emulator/jobs", None).await.json(),
        json!({ "jobs": [] })
    );
    assert_eq!(
        http.send(Method::GET, "/_emulator/stats", None)
            .await
            .json(),
        json!({})
    );
    assert!(emu.object_ops().is_empty());
    assert!(emu.jobs().is_empty());
    emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn sts_is_query_xml_on_the_same_port() {
    let emu = emulator().await;
    let http = Http::new(&emu);
    let form = |body: &str| {
        http.client
            .post(format!("{}/", http.base))
            .header("authorization", SIGV4_WEST)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.to_owned())
            .send()
    };
    let ok = form("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Ft&RoleSessionName=s-1&DurationSeconds=900")
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers().get("content-type").unwrap().to_str().unwrap(),
        "text/xml"
    );
    let request_id = ok.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = ok.text().await.unwrap();
    assert!(
        text.starts_with(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ),
        "{text}"
    );
    for element in [
        "<AssumeRoleResult>",
        "<Credentials>",
        "<AccessKeyId>ASIA",
        "<SecretAccessKey>",
        "<SessionToken>",
        "<Expiration>",
        "<AssumedRoleUser>",
        "<AssumedRoleId>AROA",
        "<Arn>arn:aws:sts::111111111111:assumed-role/t/s-1</Arn>",
        &format!("<ResponseMetadata>\n    <RequestId>{request_id}</RequestId>"),
    ] {
        assert!(text.contains(element), "{element} missing in {text}");
    }

    let bad = form("Action=AssumeRole&Version=2011-06-15&RoleSessionName=s-1")
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let text = bad.text().await.unwrap();
    assert!(
        text.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
    );
    assert!(text.contains("<Type>Sender</Type>"));
    assert!(text.contains("<Code>ValidationError</Code>"));
    assert!(text.contains("<Message>1 validation error detected: Value null at &apos;roleArn&apos; failed to satisfy constraint: Member must not be null</Message>"));
    assert!(text.contains("<RequestId>"));

    let unknown = form("Action=GetFederationToken&Version=2011-06-15")
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("<Code>InvalidAction</Code>")
    );
    // Without an Action, `/` is no operation at all.
    let none = form("hello=world").await.unwrap();
    assert_eq!(none.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        none.headers()["x-amzn-errortype"].to_str().unwrap(),
        "UnknownOperationException"
    );

    // Jobs are listed per account; a bad filter is a 400.
    http.start(minimal("base_job")).await;
    let listed = http
        .send(
            Method::GET,
            "/_emulator/jobs?account=123456789012&region=us-west-2",
            None,
        )
        .await
        .json();
    assert_eq!(listed["jobs"][0]["account"], "123456789012");
    assert!(listed["jobs"][0].get("startedBy").is_none());
    let other = http
        .send(Method::GET, "/_emulator/jobs?account=111111111111", None)
        .await
        .json();
    assert_eq!(other, json!({ "jobs": [] }));
    let bad = http
        .send(Method::GET, "/_emulator/jobs?acount=1", None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // STS settings round-trip and are validated.
    let reply = http
        .send(
            Method::PUT,
            "/_emulator/sts",
            Some(r#"{"maxSessionLifetime": "15s", "assumableRoles": ["arn:aws:iam::111111111111:role/t"]}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let report = reply.json();
    assert_eq!(report["maxSessionLifetime"], "15s");
    assert_eq!(report["sessions"][0]["roleSessionName"], "s-1");
    let rejected = http
        .send(
            Method::PUT,
            "/_emulator/sts",
            Some(r#"{"maxSessionLifetime": "soon"}"#),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    http.send(Method::POST, "/_emulator/reset", None).await;
    assert_eq!(
        emu.sts_settings(),
        agentcore_emulator::StsSettings::default()
    );
    assert_eq!(
        emu.sts_sessions().len(),
        1,
        "issued credentials outlive a reset"
    );
    emu.shutdown().await.unwrap();
}
