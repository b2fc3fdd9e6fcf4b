//! A fleet on one PostgreSQL (issue 14): labs and server processes sharing one database pick up
//! each other's configuration writes by themselves (`fleet::Watcher`), race on versioned
//! patches without losing one, and a key revoked through one server stops working on the other.
//!
//! `harness = false`: the binary is also the child server process of the two-process test
//! (`ABKIT_FLEET_CHILD=URL` makes it serve `abkit::http` on a loopback port it prints, until its
//! standard input closes). Each test prints `test NAME ... ok`; a failure panics (exit code 101).

#![cfg(all(feature = "postgres", feature = "http"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

#[path = "support/chunked.rs"]
mod chunked;
#[path = "support/postgres.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use abkit::fleet::{WatchOptions, Watcher};
use abkit::http::{Settings, router_with_keys};
use abkit::storage::{PostgresStorage, RecordKind};
use abkit::{Conflict, Context, Error, FlagPatch, Lab, NewExperiment, NewFlag};
use serde_json::{Value, json};
use support::Cluster;

const ADMIN: &str = "abk_admin_fleet-test-token";
const DEADLINE: Duration = Duration::from_secs(20);

fn lab_on(url: &str) -> Arc<Lab> {
    let store = PostgresStorage::connect(url).unwrap();
    Arc::new(Lab::builder().storage(Arc::new(store)).build().unwrap())
}

/// Polls `f` until it is `Some` or the deadline passes.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not seen within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn new_flag(key: &str, default: &str) -> NewFlag {
    serde_json::from_value(json!({
        "project_id": "p", "key": key, "default_value": default, "environment": "production"
    }))
    .unwrap()
}

/// Two labs in one process, each with its own pool; a watcher on the second.
fn labs_follow_each_other(cluster: &Cluster) {
    let url = cluster.database("follow");
    let a = lab_on(&url);
    let b = lab_on(&url);
    let watcher = Watcher::start(&b, WatchOptions::new().poll(Duration::from_millis(200))).unwrap();
    let ctx = Context::new("u1");

    // A flag created through A is evaluated by B.
    let flag = a.flags().create(new_flag("banner", "off")).unwrap();
    eventually("a new flag", || {
        let e = b.evaluate("p", "production", "banner", &ctx);
        (e.value() == &json!("off") && e.error_code().is_none()).then_some(())
    });
    // An experiment created and started through A assigns on B.
    let exp: NewExperiment = serde_json::from_value(json!({
        "name": "checkout", "variants": [{"id": "a"}, {"id": "b"}]
    }))
    .unwrap();
    let id = a.experiments().create(exp).unwrap().id().to_string();
    a.experiments().start(&id).unwrap();
    let served = eventually("a started experiment", || {
        b.assign(&id, &ctx)
            .ok()
            .and_then(|d| d.variant_key().cloned())
    });
    assert_eq!(
        Some(served),
        a.assign(&id, &ctx).unwrap().variant_key().cloned()
    );
    // An update and a delete.
    let current = a.flags().get(flag.id.as_str()).unwrap();
    let patch: FlagPatch = serde_json::from_value(json!({"default_value": "on"})).unwrap();
    a.flags()
        .update(flag.id.as_str(), current.version(), patch)
        .unwrap();
    eventually("an updated flag", || {
        let e = b.evaluate("p", "production", "banner", &ctx);
        (e.value() == &json!("on")).then_some(())
    });
    a.flags().delete(flag.id.as_str()).unwrap();
    eventually("a deleted flag", || {
        let e = b.evaluate("p", "production", "banner", &ctx);
        e.error_code().is_some().then_some(())
    });
    let stats = watcher.stop();
    assert!(stats.syncs >= 4, "{stats:?}");
    assert!(stats.applied >= 4, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    // B wrote nothing, yet knows everything A wrote: a sync now has nothing left to apply.
    let report = b.sync().unwrap();
    assert_eq!(report.applied, 0, "{report:?}");
    assert_eq!(report.position, a.storage().change_position().unwrap());
}

/// Two labs patch one flag from the version each read: one wins, the other gets a version
/// conflict, and nothing is lost.
fn versioned_patches_race(cluster: &Cluster) {
    let url = cluster.database("patches");
    let a = lab_on(&url);
    let b = lab_on(&url);
    let flag = a.flags().create(new_flag("k", "d")).unwrap();
    let id = flag.id.to_string();
    for round in 0..20 {
        b.sync().unwrap();
        let v = a.flags().get(&id).unwrap().version();
        let pa: FlagPatch =
            serde_json::from_value(json!({"default_value": format!("a{round}")})).unwrap();
        let pb: FlagPatch =
            serde_json::from_value(json!({"default_value": format!("b{round}")})).unwrap();
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| {
                barrier.wait();
                a.flags().update(&id, v, pa)
            });
            let hb = s.spawn(|| {
                barrier.wait();
                b.flags().update(&id, v, pb)
            });
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {round}: {ra:?} / {rb:?}"
        );
        let (winner, loser) = if ra.is_ok() { ("a", rb) } else { ("b", ra) };
        assert!(
            matches!(loser, Err(Error::Conflict(Conflict::Version { .. }))),
            "round {round}: {loser:?}"
        );
        let stored = a.flags().get(&id).unwrap();
        assert_eq!(stored.version(), v + 1, "round {round}");
        assert_eq!(
            serde_json::to_value(stored.value()).unwrap()["defaultValue"],
            json!(format!("{winner}{round}")),
            "round {round}"
        );
    }
}

// ---- two server processes -------------------------------------------------------------------

/// The child: serves `abkit::http` from a lab on `url`, with a watcher, until stdin closes.
fn child(url: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let lab = lab_on(url);
        let (app, keys) = router_with_keys(Arc::clone(&lab), Settings::new(Some(ADMIN.into())));
        let _watcher = Watcher::start_with(
            &lab,
            WatchOptions::new().poll(Duration::from_millis(200)),
            move |r| {
                if r.reloaded || r.kinds.contains(&RecordKind::ApiKey) {
                    keys.reload().unwrap();
                }
            },
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("port {}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut sink);
            })
            .await;
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stdin_closed)
            .await
            .unwrap();
    });
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn spawn(url: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("ABKIT_FLEET_CHILD", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .unwrap_or_else(|| panic!("child said {line:?}"))
            .parse()
            .unwrap();
        Server { child, port }
    }

    /// One request (`Connection: close`); the status and the JSON body.
    fn call(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, _, body) = self.request(token, method, path, body, "");
        (status, body)
    }

    /// The version a get of `path` answers in its `ETag`.
    fn etag(&self, path: &str) -> u64 {
        let (status, head, _) = self.request(ADMIN, "GET", path, None, "");
        assert_eq!(status, 200, "{head}");
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("etag:")
                    .map(str::to_owned)
            })
            .and_then(|v| v.trim().trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("no etag in {head}"))
    }

    /// A `PATCH` of `path` with `If-Match: "<version>"` (the ETag a get answered).
    fn call_if_match(&self, version: Option<u64>, path: &str, body: &Value) -> (u16, Value) {
        let header = version.map_or(String::new(), |v| format!("If-Match: \"{v}\"\r\n"));
        let (status, _, body) = self.request(ADMIN, "PATCH", path, Some(body), &header);
        (status, body)
    }

    fn request(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &str,
    ) -> (u16, String, Value) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}\
             Content-Length: {}\r\n\r\n{bytes}",
            bytes.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            chunked::dechunk(body)
        } else {
            body.to_owned()
        };
        (
            status,
            head.to_owned(),
            serde_json::from_str(&body).unwrap_or(Value::Null),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn two_server_processes(cluster: &Cluster) {
    let url = cluster.database("servers");
    let one = Server::spawn(&url);
    let two = Server::spawn(&url);
    // An experiment created and started through one is assigned by the other.
    let body = json!({"name": "fleet", "variants": [
        {"name": "A", "splitPercentage": 50}, {"name": "B", "splitPercentage": 50}
    ]});
    let (status, created) = one.call(ADMIN, "POST", "/api/experiments", Some(&body));
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let (status, started) = one.call(ADMIN, "POST", &format!("/api/experiments/{id}/start"), None);
    assert_eq!(status, 200, "{started}");
    let assign = json!({"userId": "u1"});
    let path = format!("/api/experiments/{id}/assign");
    let (_, from_one) = one.call(ADMIN, "POST", &path, Some(&assign));
    let from_two = eventually("the started experiment on the other server", || {
        let (status, body) = two.call(ADMIN, "POST", &path, Some(&assign));
        (status == 200).then_some(body)
    });
    assert_eq!(from_two["data"]["variantId"], from_one["data"]["variantId"]);
    // A key created through one works on the other; revoked through one, it stops there too.
    let (status, key) = one.call(
        ADMIN,
        "POST",
        "/api/keys",
        Some(&json!({"name": "ci", "scope": "admin"})),
    );
    assert_eq!(status, 201, "{key}");
    let token = key["data"]["token"].as_str().unwrap().to_owned();
    let key_id = key["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) = two.call(&token, "GET", "/api/experiments", None);
    assert_eq!(status, 200);
    let (status, _) = one.call(ADMIN, "DELETE", &format!("/api/keys/{key_id}"), None);
    assert_eq!(status, 200);
    eventually("the revocation on the other server", || {
        let (status, _) = two.call(&token, "GET", "/api/experiments", None);
        (status == 401).then_some(())
    });
}

/// Two server processes start two experiments of one flag at the same moment: exactly one
/// wins (200), the other is refused (409), whatever process each request reached; and two
/// `PATCH`es of one draft with the same `If-Match` version: one applies, the other is a conflict.
fn processes_race_on_exclusive_rules(cluster: &Cluster) {
    let url = cluster.database("race");
    let one = Server::spawn(&url);
    let two = Server::spawn(&url);
    for round in 0..10 {
        let (status, flag) = one.call(
            ADMIN,
            "POST",
            "/api/v1/flags",
            Some(&json!({
                "project_id": "p", "key": format!("k{round}"), "name": "k",
                "flag_type": "string", "default_value": "d"
            })),
        );
        assert_eq!(status, 201, "{flag}");
        let flag_id = flag["data"]["id"].as_str().unwrap().to_owned();
        let exp = json!({"name": "x", "environment": "production", "variants": [
            {"key": "a", "value": "1", "percentage": 50}, {"key": "b", "value": "2", "percentage": 50}
        ]});
        let path = format!("/api/v1/flags/{flag_id}/experiments");
        let (_, first) = one.call(ADMIN, "POST", &path, Some(&exp));
        let (_, second) = one.call(ADMIN, "POST", &path, Some(&exp));
        let start = |e: &Value| format!("{path}/{}/start", e["data"]["id"].as_str().unwrap());
        let (p1, p2) = (start(&first), start(&second));
        let barrier = std::sync::Barrier::new(2);
        let (r1, r2) = std::thread::scope(|s| {
            let h1 = s.spawn(|| {
                barrier.wait();
                one.call(ADMIN, "POST", &p1, None)
            });
            let h2 = s.spawn(|| {
                barrier.wait();
                two.call(ADMIN, "POST", &p2, None)
            });
            (h1.join().unwrap(), h2.join().unwrap())
        });
        let mut statuses = [r1.0, r2.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {r1:?} / {r2:?}");
    }
    // Versioned patches of one draft from two processes.
    let body = json!({"name": "draft", "variants": [
        {"name": "A", "splitPercentage": 50}, {"name": "B", "splitPercentage": 50}
    ]});
    let (_, created) = one.call(ADMIN, "POST", "/api/experiments", Some(&body));
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    for round in 0..10 {
        let path = format!("/api/experiments/{id}");
        let version = Some(one.etag(&path));
        let barrier = std::sync::Barrier::new(2);
        let (r1, r2) = std::thread::scope(|s| {
            let h1 = s.spawn(|| {
                barrier.wait();
                one.call_if_match(version, &path, &json!({"name": format!("one{round}")}))
            });
            let h2 = s.spawn(|| {
                barrier.wait();
                two.call_if_match(version, &path, &json!({"name": format!("two{round}")}))
            });
            (h1.join().unwrap(), h2.join().unwrap())
        });
        let mut statuses = [r1.0, r2.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {r1:?} / {r2:?}");
    }
}

/// A test of this file: a name and a function of the shared cluster.
type Test = fn(&Cluster);

fn main() {
    if let Ok(url) = std::env::var("ABKIT_FLEET_CHILD") {
        child(&url);
        return;
    }
    let Some(cluster) = Cluster::start() else {
        println!("test fleet ... skipped (no PostgreSQL server)");
        return;
    };
    let tests: [(&str, Test); 4] = [
        ("labs_follow_each_other", labs_follow_each_other),
        ("versioned_patches_race", versioned_patches_race),
        ("two_server_processes", two_server_processes),
        (
            "processes_race_on_exclusive_rules",
            processes_race_on_exclusive_rules,
        ),
    ];
    for (name, test) in tests {
        test(&cluster);
        println!("test {name} ... ok");
    }
}
