//! The `http` feature against its documents: the router runs on `127.0.0.1:0` (a real socket,
//! started and stopped by each test), every curl example of the feed and flag documents and every
//! flow endpoint is replayed with the documents' bodies, and each answer's shape is compared with
//! the document's example (`tests/data/seeds/`, copies of the source documents). Also: auth,
//! cross-project isolation, malformed input, and the OpenAPI document against the routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

#[path = "support/chunked.rs"]
mod chunked;

use std::collections::BTreeSet;
use std::sync::Arc;

use abkit::http::{Settings, router};
use abkit::{Lab, ManualClock, Timestamp};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "test-admin-token";

// ----- a real server and a minimal HTTP/1.1 client -----

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(lab: Arc<Lab>, settings: Settings) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(lab, settings);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn default() -> Server {
        Server::start(lab(), Settings::new(Some(ADMIN.into()))).await
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap();
    }

    async fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        Reply::parse(&out)
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, &headers, &bytes).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.call(Some(ADMIN), method, path, body).await
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    text: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let payload = if chunked {
            chunked::dechunk(rest)
        } else {
            rest.to_owned()
        };
        Reply {
            status,
            body: serde_json::from_str(&payload).unwrap_or(Value::Null),
            headers,
            text: payload,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

fn lab() -> Arc<Lab> {
    let clock = ManualClock::new("2025-02-01T00:00:00Z".parse::<Timestamp>().unwrap());
    Arc::new(Lab::builder().clock(Arc::new(clock)).build().unwrap())
}

// ----- the documents -----

fn doc(name: &str) -> String {
    let path = format!("{}/tests/data/seeds/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every JSON object that starts a line, in order, with the text just before it.
fn json_blocks(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut before = String::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "{" {
            let mut depth = 0i32;
            let mut buf = String::new();
            let mut j = i;
            while j < lines.len() {
                for c in lines[j].chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                buf.push_str(lines[j]);
                buf.push('\n');
                j += 1;
                if depth == 0 {
                    break;
                }
            }
            let v: Value = serde_json::from_str(&buf)
                .unwrap_or_else(|e| panic!("document JSON at line {}: {e}\n{buf}", i + 1));
            out.push((before.clone(), v));
            i = j;
        } else {
            if !lines[i].trim().is_empty() {
                before = lines[i].trim().to_owned();
            }
            i += 1;
        }
        offset += 1;
    }
    let _ = offset;
    out
}

/// A curl command of a document: method, path (host dropped), body.
#[derive(Debug, Clone)]
struct Curl {
    method: String,
    path: String,
    body: Option<Value>,
    /// The JSON example that follows it in the document, before the next curl (flag document).
    example: Option<Value>,
}

fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars().peekable();
    let mut started = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            (None, c) if c.is_whitespace() => {
                if started || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if started || !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn curls(text: &str) -> Vec<Curl> {
    let mut out: Vec<Curl> = Vec::new();
    let mut starts: Vec<usize> = text.match_indices("curl ").map(|(i, _)| i).collect();
    starts.retain(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n' || text.as_bytes()[i - 1] == b' ');
    for (n, &start) in starts.iter().enumerate() {
        // The command ends at a newline outside quotes that is not escaped.
        let bytes = text.as_bytes();
        let mut quote: Option<u8> = None;
        let mut end = start;
        while end < bytes.len() {
            let c = bytes[end];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'\'' || c == b'"' => quote = Some(c),
                None if c == b'\n' && bytes[end - 1] != b'\\' => break,
                None => {}
            }
            end += 1;
        }
        let words = shell_words(&text[start..end]);
        let mut method = "GET".to_owned();
        let mut url = String::new();
        let mut body = None;
        let mut i = 1;
        while i < words.len() {
            match words[i].as_str() {
                "-X" => {
                    method = words[i + 1].clone();
                    i += 1;
                }
                "-H" => i += 1,
                "-d" => {
                    body = Some(serde_json::from_str(&words[i + 1]).unwrap());
                    if method == "GET" {
                        method = "POST".into();
                    }
                    i += 1;
                }
                w if w.starts_with("http") => url = w.to_owned(),
                _ => {}
            }
            i += 1;
        }
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap_or_default();
        let next = starts.get(n + 1).copied().unwrap_or(text.len());
        let example = json_blocks(&text[end..next])
            .into_iter()
            .next()
            .map(|(_, v)| v);
        out.push(Curl {
            method,
            path,
            body,
            example,
        });
    }
    out
}

// ----- shapes -----

/// `actual` has `expected`'s shape: the same keys (plus `extras`, by name), the same JSON types
/// (integers stay integers, fractions stay floats), recursively. A document `null` accepts
/// anything, and a document string accepts `null` (a date or name the example had and this
/// experiment does not have yet), a document number accepts `null` (a figure the analysis cannot
/// compute yet is `null`, never NaN); the tests check those values separately.
fn same_shape(expected: &Value, actual: &Value, at: &str, extras: &[&str]) {
    match (expected, actual) {
        (Value::Null, _) => {}
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let inner = format!("{at}.{k}");
                let got = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{inner} is missing; got {actual}"));
                if k == "config" {
                    // The caller's own payload: an object, whatever is inside.
                    assert!(got.is_object(), "{inner}: {got}");
                    continue;
                }
                same_shape(v, got, &inner, extras);
            }
            for k in a.keys() {
                assert!(
                    e.contains_key(k) || extras.contains(&k.as_str()),
                    "{at}.{k} is not in the document's example (and not a documented extra): {actual}"
                );
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            // Element i against the document's element i (its last when the answer has more).
            if let Some(last) = e.last() {
                for (i, x) in a.iter().enumerate() {
                    same_shape(e.get(i).unwrap_or(last), x, &format!("{at}[{i}]"), extras);
                }
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            if e.is_f64() {
                assert!(
                    a.is_f64(),
                    "{at}: the document has a fraction ({e}), got {a}"
                );
            } else {
                assert!(
                    !a.is_f64(),
                    "{at}: the document has an integer ({e}), got {a}"
                );
            }
        }
        (Value::String(_), Value::String(_) | Value::Null)
        | (Value::Number(_), Value::Null)
        | (Value::Bool(_), Value::Bool(_)) => {}
        (e, a) => panic!("{at}: the document has {e}, got {a}"),
    }
}

fn key_set(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

// ----- the flow document -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_document_replayed() {
    let text = doc("flow-experiments-api.txt");
    let blocks = json_blocks(&text);
    assert_eq!(
        blocks.len(),
        4,
        "list, create body, results, compute-results"
    );
    let (list_doc, create_body, results_doc, computed_doc) =
        (&blocks[0].1, &blocks[1].1, &blocks[2].1, &blocks[3].1);
    let s = Server::default().await;
    let aud = json!({"id": "aud_xyz", "name": "everyone", "condition": {}});
    s.admin("POST", "/api/audiences", Some(&aud))
        .await
        .expect(201);

    // Create with the document's body.
    let created = s
        .admin("POST", "/api/experiments", Some(create_body))
        .await
        .expect(201);
    assert!(created.header("etag").is_some());
    let detail_extras = ["config", "participants", "conversions"];
    let item_doc = &list_doc["data"][0];
    same_shape(item_doc, &created.body["data"], "create", &detail_extras);
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body["data"]["variants"][0]["splitPercentage"],
        json!(50)
    );
    assert_eq!(created.body["data"]["startDate"], Value::Null);
    // A second one, so paging has something to page.
    s.admin("POST", "/api/experiments", Some(create_body))
        .await
        .expect(201);

    // Get ("with all variant details") and update (draft only, partial).
    let got = s
        .admin("GET", &format!("/api/experiments/{id}"), None)
        .await
        .expect(200);
    same_shape(item_doc, &got.body["data"], "get", &detail_extras);
    let patched = s
        .admin(
            "PATCH",
            &format!("/api/experiments/{id}"),
            Some(&json!({"description": "changed"})),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["data"]["description"], "changed");
    assert_eq!(patched.body["data"]["name"], create_body["name"]);
    // If-Match with a stale version is a version conflict.
    let stale = s
        .raw(
            "PATCH",
            &format!("/api/experiments/{id}"),
            &[
                ("Authorization", &format!("Bearer {ADMIN}")),
                ("If-Match", "\"1\""),
            ],
            br#"{"name": "x"}"#,
        )
        .await
        .expect(409);
    assert_eq!(stale.error_code(), "version_conflict");

    // A draft assigns nobody.
    let assign = |u: &str| json!({"userId": u, "attributes": {"plan": "pro"}});
    let draft = s
        .admin(
            "POST",
            &format!("/api/experiments/{id}/assign"),
            Some(&assign("u0")),
        )
        .await
        .expect(200);
    assert_eq!(draft.body["data"]["variantId"], Value::Null);

    // Start; users are assigned with their flow; some convert.
    let started = s
        .admin("POST", &format!("/api/experiments/{id}/start"), None)
        .await
        .expect(200);
    assert_eq!(started.body["data"]["status"], "running");
    assert_eq!(started.body["data"]["startDate"], "2025-02-01T00:00:00Z");
    let mut served = std::collections::HashMap::new();
    for i in 0..40 {
        let u = format!("u{i}");
        let r = s
            .admin(
                "POST",
                &format!("/api/experiments/{id}/assign"),
                Some(&assign(&u)),
            )
            .await
            .expect(200);
        let flow = r.body["data"]["flowId"].as_str().unwrap().to_owned();
        assert!(flow == "flow_a" || flow == "flow_b", "{}", r.text);
        assert!(r.body["data"]["config"].is_object());
        served.insert(u.clone(), r.body["data"]["variantId"].clone());
        if i % 4 == 0 {
            let c = json!({"userId": u});
            s.admin(
                "POST",
                &format!("/api/experiments/{id}/conversions"),
                Some(&c),
            )
            .await
            .expect(200);
            // Deduplicated per user.
            let again = s
                .admin(
                    "POST",
                    &format!("/api/experiments/{id}/conversions"),
                    Some(&c),
                )
                .await
                .expect(200);
            assert_eq!(again.body, json!({"data": {"ok": true}}));
        }
    }

    // List: the document's page, with page/limit as strings or numbers.
    for q in [
        "",
        "?page=1&limit=20",
        "?page=\"1\"",
        "?status=running&limit=20",
    ] {
        let q = q.replace('"', "");
        let listed = s
            .admin("GET", &format!("/api/experiments{q}"), None)
            .await
            .expect(200);
        same_shape(list_doc, &listed.body, "list", &[]);
        assert!(
            listed.body["data"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
    }
    let running = s
        .admin("GET", "/api/experiments?status=running", None)
        .await
        .expect(200);
    assert_eq!(
        running.body["meta"],
        json!({"total": 1, "page": 1, "limit": 20, "totalPages": 1})
    );
    assert_eq!(running.body["data"][0]["_count"]["assignments"], json!(40));
    let paged = s
        .admin("GET", "/api/experiments?page=2&limit=1", None)
        .await
        .expect(200);
    assert_eq!(paged.body["meta"]["totalPages"], json!(2));
    assert_eq!(paged.body["data"].as_array().map(Vec::len), Some(1));

    // Raw and computed results.
    let results = s
        .admin("GET", &format!("/api/experiments/{id}/results"), None)
        .await
        .expect(200);
    same_shape(
        results_doc,
        &results.body,
        "results",
        &["metric", "kind", "count", "sum", "sumSquares"],
    );
    let participants: u64 = results.body["data"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["participants"].as_u64().unwrap())
        .sum();
    assert_eq!(participants, 40);
    let computed = s
        .admin(
            "POST",
            &format!("/api/experiments/{id}/compute-results"),
            None,
        )
        .await
        .expect(200);
    same_shape(computed_doc, &computed.body, "compute-results", &[]);
    let conversions: u64 = computed.body["data"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["conversions"].as_u64().unwrap())
        .sum();
    assert_eq!(conversions, 10);

    // Stop: enrolled users keep their variant, new users get none.
    let stopped = s
        .admin("POST", &format!("/api/experiments/{id}/stop"), None)
        .await
        .expect(200);
    assert_eq!(stopped.body["data"]["status"], "stopped");
    assert_eq!(stopped.body["data"]["endDate"], "2025-02-01T00:00:00Z");
    for u in ["u1", "u2", "u3"] {
        let r = s
            .admin(
                "POST",
                &format!("/api/experiments/{id}/assign"),
                Some(&assign(u)),
            )
            .await
            .expect(200);
        assert_eq!(
            r.body["data"]["variantId"], served[u],
            "{u} keeps its variant"
        );
    }
    let newcomer = s
        .admin(
            "POST",
            &format!("/api/experiments/{id}/assign"),
            Some(&assign("new_user")),
        )
        .await
        .expect(200);
    assert_eq!(newcomer.body["data"]["variantId"], Value::Null);

    // Archive (the flow API's DELETE).
    let archived = s
        .admin("DELETE", &format!("/api/experiments/{id}"), None)
        .await
        .expect(200);
    assert_eq!(archived.body["data"]["status"], "archived");
    s.stop().await;
}

// ----- the feed document -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_document_replayed() {
    let text = doc("feed-experiments-api.txt");
    let all = curls(&text);
    assert_eq!(all.len(), 8, "{all:#?}");
    let responses: Vec<Value> = json_blocks(&text)
        .into_iter()
        .filter(|(before, _)| before == "Response")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(responses.len(), 5, "list, create, get, start, results");
    let (list_doc, create_doc, get_doc, start_doc, results_doc) = (
        &responses[0],
        &responses[1],
        &responses[2],
        &responses[3],
        &responses[4],
    );
    let s = Server::default().await;

    // The two create examples.
    let creates: Vec<&Curl> = all
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/v1/experiments")
        .collect();
    assert_eq!(creates.len(), 2);
    let mut ids = Vec::new();
    for c in &creates {
        let r = s.admin("POST", &c.path, c.body.as_ref()).await.expect(201);
        same_shape(create_doc, &r.body, "create", &[]);
        assert_eq!(key_set(&r.body["data"]), key_set(&create_doc["data"]));
        ids.push(r.body["data"]["id"].as_str().unwrap().to_owned());
    }
    let created = s
        .admin("GET", &format!("/v1/experiments/{}", ids[1]), None)
        .await
        .expect(200);
    assert_eq!(created.body["data"]["variants"][2]["traffic"], json!(0.34));
    assert_eq!(
        created.body["data"]["variants"][0]["config"],
        json!({"ads.frequency.interval": 5})
    );
    let id = ids[0].clone();
    let subst = |c: &Curl| c.path.replace("exp_abc123", &id);

    // Results of an experiment with no data: a report, not an error.
    let results_curl = all.iter().find(|c| c.path.ends_with("/results")).unwrap();
    let empty = s.admin("GET", &subst(results_curl), None).await.expect(200);
    assert_eq!(empty.body["data"]["variants"][0]["participants"], json!(0));

    // Update while draft (the document's PATCH), then start (the document's start).
    let patch = all.iter().find(|c| c.method == "PATCH").unwrap();
    let r = s
        .admin("PATCH", &subst(patch), patch.body.as_ref())
        .await
        .expect(200);
    assert_eq!(r.body["data"]["traffic"], json!(0.3));
    let start = all.iter().find(|c| c.path.ends_with("/start")).unwrap();
    let r = s.admin("POST", &subst(start), None).await.expect(200);
    same_shape(start_doc, &r.body, "start", &[]);
    assert_eq!(key_set(&r.body["data"]), key_set(&start_doc["data"]));
    // Running experiments cannot be changed or deleted.
    let r = s
        .admin("PATCH", &subst(patch), patch.body.as_ref())
        .await
        .expect(409);
    assert_eq!(r.error_code(), "lifecycle");
    let delete = all.iter().find(|c| c.method == "DELETE").unwrap();
    s.admin("DELETE", &subst(delete), None).await.expect(409);

    // The list example (?status=running).
    let list = all
        .iter()
        .find(|c| c.method == "GET" && c.path.contains("?status="))
        .unwrap();
    let r = s.admin("GET", &list.path, None).await.expect(200);
    same_shape(list_doc, &r.body, "list", &[]);
    assert_eq!(r.body["meta"], json!({"total": 1}));

    // Traffic: users assigned, events tracked (POST /v1/events), with the document's metrics.
    let mut enrolled = 0;
    for i in 0..600 {
        let u = format!("viewer_{i}");
        let a = s
            .admin(
                "POST",
                &format!("/v1/experiments/{id}/assign"),
                Some(&json!({"userId": u})),
            )
            .await
            .expect(200);
        if a.body["data"]["variant"].is_null() {
            continue;
        }
        enrolled += 1;
        assert!(a.body["data"]["config"]["weights"].is_object());
        let treated = a.body["data"]["variant"] == "high_engagement";
        for (metric, value) in [
            (
                "completionRate",
                if (i % 10) < if treated { 6 } else { 4 } {
                    1.0
                } else {
                    0.0
                },
            ),
            ("watchTime", 28.5 + f64::from(i % 7)),
            ("sessionsPerUser", f64::from(1 + i % 3)),
        ] {
            let e = json!({"experimentId": id, "userId": u, "metric": metric, "value": value});
            s.admin("POST", "/v1/events", Some(&e)).await.expect(200);
        }
    }
    assert!(enrolled > 100, "30% of 600 enrolled: {enrolled}");

    // Get: the document's detailed form with participants.
    let r = s
        .admin("GET", &format!("/v1/experiments/{id}"), None)
        .await
        .expect(200);
    same_shape(get_doc, &r.body, "get", &[]);
    let participants: u64 = r.body["data"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["participants"].as_u64().unwrap())
        .sum();
    assert_eq!(participants, enrolled);

    // Results (the document's curl) with data.
    let r = s.admin("GET", &subst(results_curl), None).await.expect(200);
    same_shape(
        results_doc,
        &r.body,
        "results",
        &[
            "endedAt",
            "confidenceLevel",
            "srm",
            "ciLower",
            "ciUpper",
            "difference",
            "differenceCiLower",
            "differenceCiUpper",
            "liftCiLower",
            "liftCiUpper",
            "pValue",
            "adjustedPValue",
            "chanceToBeatControl",
            "pValue",
            "chiSquare",
            "mismatch",
            "degreesOfFreedom",
            "threshold",
            "observed",
            "expected",
        ],
    );
    assert!(r.body["data"]["variants"][1]["metrics"]["completionRate"]["lift"].is_f64());

    // Stop with the document's body: the winner is rolled out to everyone.
    let stop = all.iter().find(|c| c.path.ends_with("/stop")).unwrap();
    let r = s
        .admin("POST", &subst(stop), stop.body.as_ref())
        .await
        .expect(200);
    assert_eq!(
        r.body,
        json!({"data": {"id": id, "status": "stopped", "endedAt": "2025-02-01T00:00:00Z",
                        "winner": "high_engagement", "reason": "Statistical significance reached"}})
    );
    let a = s
        .admin(
            "POST",
            &format!("/v1/experiments/{id}/assign"),
            Some(&json!({"userId": "late"})),
        )
        .await
        .expect(200);
    assert_eq!(a.body["data"]["variant"], "high_engagement");

    // Delete (the document's curl) once stopped.
    let r = s.admin("DELETE", &subst(delete), None).await.expect(200);
    assert_eq!(r.body, json!({"data": {"id": id, "deleted": true}}));
    s.admin("GET", &format!("/v1/experiments/{id}"), None)
        .await
        .expect(404);

    // The documented required fields are enforced.
    let mut body = creates[0].body.clone().unwrap();
    body.as_object_mut().unwrap().remove("traffic");
    let r = s
        .admin("POST", "/v1/experiments", Some(&body))
        .await
        .expect(400);
    assert_eq!(r.body["error"]["field"], "traffic");
    s.stop().await;
}

// ----- the flag document -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_document_replayed() {
    let text = doc("flag-experiments-api.txt");
    let all = curls(&text);
    assert_eq!(all.len(), 7, "{all:#?}");
    assert!(
        all.iter().all(|c| c.example.is_some()),
        "each curl has its example"
    );
    let s = Server::default().await;
    let doc_flag = "f1a2b3c4-5d6e-7f8a-9b0c-1d2e3f4a5b6c";
    let doc_exp = "e1a2b3c4-5d6e-7f8a-9b0c-1d2e3f4a5b6c";
    let (mut flag_id, mut exp_id) = (String::new(), String::new());
    for c in &all {
        let path = c.path.replace(doc_flag, &flag_id).replace(doc_exp, &exp_id);
        let body = c.body.as_ref().map(|b| {
            serde_json::from_str::<Value>(
                &b.to_string()
                    .replace(doc_flag, &flag_id)
                    .replace(doc_exp, &exp_id),
            )
            .unwrap()
        });
        let r = s.admin(&c.method, &path, body.as_ref()).await;
        assert!(
            r.status == 200 || r.status == 201,
            "{} {path}: {}",
            c.method,
            r.text
        );
        let example = c.example.as_ref().unwrap();
        let extras: &[&str] = if path.contains("/experiments/") && c.method == "GET" {
            &["flag_id"]
        } else {
            &[]
        };
        same_shape(example, &r.body, &path, extras);
        if path == "/api/v1/flags" {
            flag_id = r.body["data"]["id"].as_str().unwrap().to_owned();
            assert_eq!(r.body["data"]["enabled"], false);
        } else if path.ends_with("/experiments") {
            exp_id = r.body["data"]["id"].as_str().unwrap().to_owned();
            assert_eq!(r.body["data"]["conversions"], json!(0));
        } else if path.ends_with("/evaluate") {
            let v = &r.body["flags"]["checkout_flow"]["value"];
            assert!(v == "old_checkout" || v == "new_checkout", "{}", r.text);
        } else if path.ends_with("/track") {
            assert_eq!(r.body, json!({"data": {"ok": true}}));
        } else if c.method == "GET" {
            // Read results: the walkthrough's conversion was counted (evaluate recorded the
            // exposure, so track found the user enrolled).
            assert_eq!(r.body["data"]["conversions"], json!(1));
        }
    }
    // After the stop, the flag reverts to its default and track is rejected.
    let eval = all.iter().find(|c| c.path.ends_with("/evaluate")).unwrap();
    let r = s
        .admin("POST", &eval.path, eval.body.as_ref())
        .await
        .expect(200);
    assert_eq!(
        r.body["flags"]["checkout_flow"],
        json!({"value": "control", "rule_id": null})
    );
    let track = json!({"flag_id": flag_id, "experiment_id": exp_id, "user_id": "usr_123"});
    let r = s
        .admin("POST", "/api/v1/flags/track", Some(&track))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "lifecycle");
    // Track before any evaluation: not enrolled.
    let listed = s
        .admin("GET", &format!("/api/v1/flags/{flag_id}/experiments"), None)
        .await
        .expect(200);
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    let flags = s
        .admin("GET", "/api/v1/flags?project_id=PROJECT_ID", None)
        .await
        .expect(200);
    assert_eq!(flags.body["data"][0]["key"], "checkout_flow");
    s.stop().await;
}

// ----- auth and projects -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scopes_and_projects() {
    let s = Server::default().await;
    s.call(None, "GET", "/api/experiments", None)
        .await
        .expect(401);
    s.call(Some("wrong"), "GET", "/api/experiments", None)
        .await
        .expect(401);
    s.call(Some("abk_0000_1111"), "GET", "/api/experiments", None)
        .await
        .expect(401);
    s.call(None, "GET", "/health", None).await.expect(200);

    let key = |project: &str, scope: &str| json!({"name": format!("{project}-{scope}"), "project": project, "scope": scope});
    let mut tokens = std::collections::HashMap::new();
    for (p, sc) in [("alpha", "admin"), ("alpha", "client"), ("beta", "admin")] {
        let r = s
            .admin("POST", "/api/keys", Some(&key(p, sc)))
            .await
            .expect(201);
        let token = r.body["data"]["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("abk_"));
        assert!(r.body["data"].get("digest").is_none());
        tokens.insert(format!("{p}-{sc}"), token);
    }
    let (alpha, alpha_client, beta) = (
        &tokens["alpha-admin"],
        &tokens["alpha-client"],
        &tokens["beta-admin"],
    );
    // Listing keys never shows secrets or digests; project keys cannot manage keys.
    let listed = s.admin("GET", "/api/keys", None).await.expect(200);
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(3));
    assert!(!listed.text.contains(alpha.rsplit('_').next().unwrap()));
    s.call(Some(alpha), "GET", "/api/keys", None)
        .await
        .expect(403);

    // alpha's experiment is invisible to beta: 404 everywhere, absent from its list.
    let body = json!({"name": "a", "variants": [{"name": "A", "splitPercentage": 50}, {"name": "B", "splitPercentage": 50}]});
    let r = s
        .call(Some(alpha), "POST", "/api/experiments", Some(&body))
        .await
        .expect(201);
    let id = r.body["data"]["id"].as_str().unwrap().to_owned();
    for (m, path) in [
        ("GET", format!("/api/experiments/{id}")),
        ("GET", format!("/v1/experiments/{id}")),
        ("POST", format!("/api/experiments/{id}/start")),
        ("DELETE", format!("/v1/experiments/{id}")),
        ("GET", format!("/api/experiments/{id}/results")),
    ] {
        let r = s.call(Some(beta), m, &path, None).await.expect(404);
        assert_eq!(r.error_code(), "not_found");
    }
    let r = s
        .call(Some(beta), "GET", "/api/experiments", None)
        .await
        .expect(200);
    assert_eq!(r.body["meta"]["total"], json!(0));
    let r = s
        .call(Some(alpha), "GET", "/v1/experiments", None)
        .await
        .expect(200);
    assert_eq!(r.body["meta"]["total"], json!(1));
    // A body naming another project is refused as not found.
    let mut other = body.clone();
    other["projectId"] = json!("beta");
    s.call(Some(alpha), "POST", "/api/experiments", Some(&other))
        .await
        .expect(404);

    // Client keys decide and track but do not configure.
    s.call(Some(alpha_client), "POST", "/api/experiments", Some(&body))
        .await
        .expect(403);
    s.call(
        Some(alpha),
        "POST",
        &format!("/api/experiments/{id}/start"),
        None,
    )
    .await
    .expect(200);
    let r = s
        .call(
            Some(alpha_client),
            "POST",
            &format!("/api/experiments/{id}/assign"),
            Some(&json!({"userId": "u1"})),
        )
        .await
        .expect(200);
    assert!(r.body["data"]["variantId"].is_string());
    s.call(
        Some(alpha_client),
        "POST",
        &format!("/api/experiments/{id}/conversions"),
        Some(&json!({"userId": "u1"})),
    )
    .await
    .expect(200);

    // Flags: beta cannot see alpha's, nor evaluate alpha's project.
    let flag =
        json!({"project_id": "alpha", "key": "k", "flag_type": "boolean", "default_value": true});
    let r = s
        .call(Some(alpha), "POST", "/api/v1/flags", Some(&flag))
        .await
        .expect(201);
    let fid = r.body["data"]["id"].as_str().unwrap().to_owned();
    s.call(Some(beta), "GET", &format!("/api/v1/flags/{fid}"), None)
        .await
        .expect(404);
    s.call(Some(beta), "POST", "/api/v1/flags", Some(&flag))
        .await
        .expect(404);
    let eval =
        json!({"project_id": "alpha", "environment": "production", "context": {"user_id": "u"}});
    s.call(Some(beta), "POST", "/api/v1/flags/evaluate", Some(&eval))
        .await
        .expect(404);
    let r = s
        .call(
            Some(alpha_client),
            "POST",
            "/api/v1/flags/evaluate",
            Some(&eval),
        )
        .await
        .expect(200);
    assert_eq!(
        r.body,
        json!({"flags": {"k": {"value": true, "rule_id": null}}})
    );

    // Revocation takes effect at once.
    let listed = s.admin("GET", "/api/keys", None).await.expect(200);
    let beta_id = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["project"] == "beta")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.admin("DELETE", &format!("/api/keys/{beta_id}"), None)
        .await
        .expect(200);
    s.call(Some(beta), "GET", "/api/experiments", None)
        .await
        .expect(401);
    // X-API-Key works as well as Authorization.
    let r = s
        .raw("GET", "/api/experiments", &[("X-API-Key", alpha)], b"")
        .await
        .expect(200);
    assert_eq!(r.body["meta"]["total"], json!(1));
    s.stop().await;
}

// ----- malformed input -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_json_errors() {
    let mut settings = Settings::new(Some(ADMIN.into()));
    settings.max_body_bytes = 4096;
    let s = Server::start(lab(), settings).await;
    let auth = format!("Bearer {ADMIN}");
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/api/experiments",
            b"{not json".to_vec(),
            422,
            "invalid_json",
        ),
        (
            "POST",
            "/api/experiments",
            b"".to_vec(),
            422,
            "invalid_json",
        ),
        (
            "POST",
            "/api/experiments",
            br#"{"name": 5}"#.to_vec(),
            422,
            "invalid_json",
        ),
        (
            "POST",
            "/api/experiments",
            br#"{"name": "x", "colour": "red"}"#.to_vec(),
            422,
            "invalid_json",
        ),
        (
            "POST",
            "/api/experiments",
            br#"{"name": "x", "variants": [{"splitPercentage": 60}, {"splitPercentage": 60}]}"#
                .to_vec(),
            400,
            "validation",
        ),
        (
            "POST",
            "/api/experiments",
            vec![b' '; 5000],
            413,
            "body_too_large",
        ),
        (
            "GET",
            "/api/experiments?page=two",
            vec![],
            400,
            "validation",
        ),
        ("GET", "/api/experiments?limit=0", vec![], 400, "validation"),
        (
            "GET",
            "/api/experiments?staus=running",
            vec![],
            400,
            "validation",
        ),
        (
            "GET",
            "/api/experiments?status=paused",
            vec![],
            400,
            "validation",
        ),
        (
            "GET",
            "/api/experiments/exp_missing",
            vec![],
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/experiments/exp_missing/start",
            vec![],
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/flags/evaluate",
            br#"{"project_id": "p"}"#.to_vec(),
            422,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/events",
            br#"{"experimentId": "nope", "userId": "u"}"#.to_vec(),
            404,
            "not_found",
        ),
        ("PUT", "/api/experiments", vec![], 405, "method_not_allowed"),
        ("GET", "/api/nothing-here", vec![], 404, "no_route"),
    ];
    for (m, path, body, status, code) in cases {
        let r = s.raw(m, path, &h, &body).await;
        assert_eq!(r.status, status, "{m} {path}: {}", r.text);
        assert_eq!(r.error_code(), code, "{m} {path}: {}", r.text);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Validation errors name the field and the value.
    let r = s.raw("GET", "/api/experiments?page=two", &h, b"").await;
    assert_eq!(r.body["error"]["field"], "page");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("two"));
    // Nothing the caller sends gets a 500: random bodies on every route (fixed seed).
    let routes = abkit::http::routes();
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces: [&[u8]; 8] = [
        b"{",
        b"}",
        b"\"name\":",
        b"[",
        b"null",
        b"1e999",
        b"\"\\u0000\"",
        b",",
    ];
    for r in &routes {
        for _ in 0..4 {
            let mut body = Vec::new();
            for _ in 0..(next() % 12) {
                body.extend_from_slice(pieces[(next() % 8) as usize]);
            }
            let path = r.path.replace("{id}", "x").replace("{eid}", "y");
            let reply = s.raw(r.method, &path, &h, &body).await;
            assert!(
                reply.status < 500,
                "{} {path} {:?}: {}",
                r.method,
                String::from_utf8_lossy(&body),
                reply.text
            );
            assert!(
                reply.body.is_object(),
                "{} {path}: a JSON body: {}",
                r.method,
                reply.text
            );
        }
    }
    s.stop().await;
}

// ----- the OpenAPI document -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_routes() {
    let s = Server::default().await;
    let doc = s
        .call(None, "GET", "/openapi.json", None)
        .await
        .expect(200)
        .body;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let mut served: BTreeSet<(String, String)> = abkit::http::routes()
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    served.insert(("GET".into(), "/openapi.json".into()));
    assert_eq!(documented, served);
    // Every documented route is served (not the router's fallback), and each issue's route is in.
    for (m, path) in &documented {
        let concrete = path.replace("{id}", "x").replace("{eid}", "y");
        let r = s.admin(m, &concrete, None).await;
        assert!(
            !matches!(r.error_code(), "no_route" | "method_not_allowed"),
            "{m} {path} is documented but not served: {}",
            r.text
        );
    }
    for needed in [
        ("POST", "/api/experiments/{id}/assign"),
        ("POST", "/v1/experiments/{id}/assign"),
        ("POST", "/v1/events"),
        ("POST", "/api/experiments/{id}/conversions"),
        ("GET", "/api/audiences"),
        ("GET", "/health"),
        ("POST", "/api/v1/flags/evaluate"),
        ("POST", "/api/v1/flags/track"),
    ] {
        assert!(
            documented.contains(&(needed.0.to_owned(), needed.1.to_owned())),
            "{needed:?}"
        );
    }
    s.stop().await;
}

// ----- storage unavailable, timeouts -----

/// A store that refuses writes (a real SQLite file opened read-only): writes answer 503, reads
/// still work, nothing is a 500.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_unavailable_is_503() {
    use abkit::storage::SqliteStorage;
    let dir = std::env::temp_dir().join(format!("abkit-http-ro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ro.db");
    drop(SqliteStorage::open(&path).unwrap());
    let store = SqliteStorage::open_read_only(&path).unwrap();
    let lab = Arc::new(Lab::builder().storage(Arc::new(store)).build().unwrap());
    let s = Server::start(lab, Settings::new(Some(ADMIN.into()))).await;
    let body = json!({"name": "a", "variants": [{"name": "A"}, {"name": "B"}]});
    let r = s
        .admin("POST", "/api/experiments", Some(&body))
        .await
        .expect(503);
    assert_eq!(r.error_code(), "storage_unavailable");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
    s.admin("GET", "/api/experiments", None).await.expect(200);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A write stuck behind another process's lock on the SQLite file (a real exclusive lock, held
/// by a second connection) times out at the request timeout with 503; the runtime is not blocked
/// meanwhile (`/health` answers while the write waits).
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_is_503() {
    use abkit::storage::SqliteStorage;
    let dir = std::env::temp_dir().join(format!("abkit-http-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("locked.db");
    let lab = Arc::new(
        Lab::builder()
            .storage(Arc::new(SqliteStorage::open(&path).unwrap()))
            .build()
            .unwrap(),
    );
    let mut settings = Settings::new(Some(ADMIN.into()));
    settings.request_timeout = std::time::Duration::from_millis(300);
    let s = Server::start(lab, settings).await;
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let body = json!({"name": "a", "variants": [{"name": "A"}, {"name": "B"}]});
    let (stuck, health) = tokio::join!(s.admin("POST", "/api/experiments", Some(&body)), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s.call(None, "GET", "/health", None).await
    });
    let stuck = stuck.expect(503);
    assert_eq!(stuck.error_code(), "timeout");
    health.expect(200);
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
