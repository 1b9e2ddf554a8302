//! Artifacts end to end against the real megatron binary: the test plays the
//! worker over raw HTTP (claim, upload, finish) so each upload is exactly the
//! one the case needs, then reads the results back as a person would.
//! Covered: files, folders, a kept zip, an unzipped site with its link, bad
//! paths, wrong lease and token, zip-slip, the size cap, a restart, and the
//! horizon removing a build's artifacts. Uploads bound to their lease: one
//! that outlives it (requeue, cancel, finish) is discarded and the next
//! attempt starts empty; partial files go when their request ends and count
//! against the cap while they are in flight. The last move into place is
//! checked in process, on a `State`, where a requeue can be placed exactly.

use crate::builds::CYBERTRON;
use crate::common::system::{reply, wait_for, GitRepo, Megatron};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A builder that uploads a file, a folder, a zipped folder kept as a zip,
/// and a zipped folder unzipped on the megatron with a link into it.
const CONFIG: &str = r#"constructicon = #{
    builders: #{ a: #{
        commands: ["true"],
        schedulers: ["force"],
        upload: #{ "out/report.txt": "report.txt", "docs": "docs", "bundle": "bundle.zip", "site": "site" },
        zip: ["bundle", "site"],
        unzip: ["site"],
        url: #{ site: "index.html" },
    } },
    schedulers: #{ force: #{ type: "force" } },
};"#;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The test acting as worker `name` on one claimed build.
struct Run {
    url: String,
    worker: String,
    token: String,
    build: u64,
    lease: String,
}

impl Run {
    /// Forces the builder and claims the build as `w1`.
    fn start(url: &str, token: &str, force: impl Fn() -> u64) -> Run {
        let build = force();
        let (status, job) = reply(
            agent()
                .post(&format!("{url}/api/v1/worker/claim"))
                .header("x-constructicon-worker", "w1")
                .header("authorization", &format!("Bearer {token}"))
                .send_json(json!({ "wait_ms": 5000 })),
        );
        assert_eq!(status, 200, "claim: {job}");
        assert_eq!(job["build"], build, "{job}");
        Run {
            url: url.to_string(),
            worker: "w1".into(),
            token: token.into(),
            build,
            lease: job["lease"].as_str().expect("lease").to_string(),
        }
    }

    /// PUTs an artifact; `path` goes into the URL as given.
    fn put(&self, path: &str, kind: &str, body: &[u8]) -> (u16, Value) {
        self.put_as(path, kind, body, &self.lease, &self.token)
    }

    fn put_as(
        &self,
        path: &str,
        kind: &str,
        body: &[u8],
        lease: &str,
        token: &str,
    ) -> (u16, Value) {
        reply(
            agent()
                .put(&format!(
                    "{}/api/v1/worker/builds/{}/artifacts/{path}?lease={lease}&kind={kind}",
                    self.url, self.build
                ))
                .header("x-constructicon-worker", &self.worker)
                .header("authorization", &format!("Bearer {token}"))
                .send(body),
        )
    }

    #[track_caller]
    fn put_ok(&self, path: &str, kind: &str, body: &[u8]) {
        let (status, reply) = self.put(path, kind, body);
        assert_eq!(status, 200, "upload {path}: {reply}");
    }

    fn finish(&self) {
        let (status, body) = reply(
            agent()
                .post(&format!(
                    "{}/api/v1/worker/builds/{}/finish",
                    self.url, self.build
                ))
                .header("x-constructicon-worker", &self.worker)
                .header("authorization", &format!("Bearer {}", self.token))
                .send_json(json!({ "lease": self.lease, "result": "success" })),
        );
        assert_eq!(status, 200, "finish: {body}");
    }
}

/// Status, content type and bytes of a GET.
fn download(url: &str) -> (u16, String, Vec<u8>) {
    let mut response = agent().get(url).call().expect("the megatron answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .expect("body");
    (status, content_type, bytes)
}

/// A zip of (name, contents); a name ending in `/` is a folder.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in files {
        if let Some(folder) = name.strip_suffix('/') {
            zip.add_directory(folder, options).expect("folder");
        } else {
            zip.start_file(*name, options).expect("file");
            zip.write_all(contents).expect("write");
        }
    }
    zip.finish().expect("finish").into_inner()
}

/// Every file under `dir` whose name is `name`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&path, name));
        }
    }
    found
}

fn setup(megatron: &Megatron) -> (GitRepo, String) {
    let repo = GitRepo::new("arts", CONFIG);
    megatron.add_repo(&repo.url());
    let token = megatron.token("w1");
    (repo, token)
}

#[test]
fn uploads_are_stored_listed_and_served_and_survive_a_restart() {
    let mut megatron = Megatron::start(CYBERTRON);
    let (_repo, token) = setup(&megatron);
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });
    let id = run.build;

    // A file, byte for byte (every byte value, more than one read chunk).
    let report: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    run.put_ok("report.txt", "file", &report);
    // A folder, as files.
    run.put_ok("docs/a.txt", "file", b"alpha");
    run.put_ok("docs/sub/b.txt", "file", b"beta");
    // A zipped folder that is not unzipped: kept as the zip.
    let bundle = zip_of(&[("x.txt", b"x"), ("y/z.txt", b"z")]);
    run.put_ok("bundle.zip", "zip", &bundle);
    // An unzipped one.
    let site = zip_of(&[
        ("index.html", b"<h1>site</h1>"),
        ("css/", b""),
        ("css/site.css", b"h1 {}"),
    ]);
    run.put_ok("site", "zip", &site);
    // Uploading again replaces.
    run.put_ok("docs/a.txt", "file", b"ALPHA");

    let check = |megatron: &Megatron| {
        let (status, listing) = megatron.get(&format!("/api/v1/builds/{id}/artifacts"));
        assert_eq!(status, 200, "{listing}");
        assert_eq!(
            listing["artifacts"],
            json!([
                { "path": "bundle.zip", "size": bundle.len() },
                { "path": "docs/a.txt", "size": 5 },
                { "path": "docs/sub/b.txt", "size": 4 },
                { "path": "report.txt", "size": report.len() },
                { "path": "site/css/site.css", "size": 5 },
                { "path": "site/index.html", "size": 13 },
            ])
        );
        let link = format!("/api/v1/builds/{id}/artifacts/site/index.html");
        assert_eq!(listing["links"], json!({ "site": link }));

        let base = format!("{}/api/v1/builds/{id}/artifacts", megatron.url);
        let (status, content_type, bytes) = download(&format!("{base}/report.txt"));
        assert_eq!(
            (status, content_type.as_str()),
            (200, "text/plain; charset=utf-8")
        );
        assert!(bytes == report, "report.txt differs");
        assert_eq!(download(&format!("{base}/docs/a.txt")).2, b"ALPHA");
        assert_eq!(download(&format!("{base}/docs/sub/b.txt")).2, b"beta");
        let (status, content_type, bytes) = download(&format!("{base}/bundle.zip"));
        assert_eq!((status, content_type.as_str()), (200, "application/zip"));
        assert_eq!(bytes, bundle);
        let (status, content_type, bytes) = download(&format!("{}{link}", megatron.url));
        assert_eq!(
            (status, content_type.as_str()),
            (200, "text/html; charset=utf-8")
        );
        assert_eq!(bytes, b"<h1>site</h1>");
        let (_, content_type, bytes) = download(&format!("{base}/site/css/site.css"));
        assert_eq!(
            (content_type.as_str(), bytes.as_slice()),
            ("text/css; charset=utf-8", &b"h1 {}"[..])
        );
        // A folder serves its index.html; one without is a 404.
        assert_eq!(download(&format!("{base}/site")).2, b"<h1>site</h1>");
        let (status, body) = megatron.get(&format!("/api/v1/builds/{id}/artifacts/docs"));
        assert_eq!(status, 404, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("folder")),
            "{body}"
        );
        // Missing file, unknown build, a path that climbs out.
        assert_eq!(
            megatron
                .get(&format!("/api/v1/builds/{id}/artifacts/nope.txt"))
                .0,
            404
        );
        assert_eq!(
            megatron.get("/api/v1/builds/999/artifacts/report.txt").0,
            404
        );
        assert_eq!(megatron.get("/api/v1/builds/999/artifacts").0, 404);
        let (status, _) = megatron.get(&format!(
            "/api/v1/builds/{id}/artifacts/%2E%2E/%2E%2E/admin-token"
        ));
        assert_eq!(status, 400);
    };
    check(&megatron);
    run.finish();
    check(&megatron);
    megatron.restart();
    check(&megatron);
}

#[test]
fn bad_uploads_are_refused_and_write_nothing_outside() {
    let megatron = Megatron::start(CYBERTRON);
    let (_repo, token) = setup(&megatron);
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });

    for path in [
        "..%2Fevil",
        "%2E%2E/evil",
        "a/%2E%2E/%2E%2E/evil",
        "%2Fetc%2Fevil",
        "/etc/evil",
        "a%5C..%5Cevil",
        "a//evil",
        "evil%0A",
    ] {
        let (status, body) = run.put(path, "file", b"pwned");
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("artifact path")),
            "{path}: {body}"
        );
    }
    let (status, body) = run.put("ok.txt", "file-ish", b"x");
    assert_eq!(status, 400, "{body}");
    let (status, body) = run.put_as("ok.txt", "file", b"x", "not-the-lease", &token);
    assert_eq!(status, 409, "{body}");
    let (status, body) = run.put_as("ok.txt", "file", b"x", &run.lease, "wrong-token");
    assert_eq!(status, 401, "{body}");

    // Zip-slip, an absolute entry and a symlink, into an unzipped folder.
    let mut link = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    link.add_symlink("passwd", "/etc/passwd", options)
        .expect("symlink");
    let link = link.finish().expect("finish").into_inner();
    for (archive, entry) in [
        (
            zip_of(&[("index.html", b"ok"), ("../../evil", b"pwned")]),
            "../../evil",
        ),
        (zip_of(&[("/tmp/evil", b"pwned")]), "/tmp/evil"),
        (zip_of(&[("a/../../evil", b"pwned")]), "a/../../evil"),
        (link, "passwd"),
    ] {
        let (status, body) = run.put("site", "zip", &archive);
        assert_eq!(status, 400, "{entry}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(entry), "{entry}: {body}");
    }
    // Not a zip at all.
    let (status, body) = run.put("site", "zip", b"not a zip");
    assert_eq!(status, 400, "{body}");

    assert!(
        find_named(&megatron.dir, "evil").is_empty(),
        "{:?}",
        find_named(&megatron.dir, "evil")
    );
    let (_, listing) = megatron.get(&format!("/api/v1/builds/{}/artifacts", run.build));
    assert_eq!(listing["artifacts"], json!([]), "{listing}");
    run.finish();
    // The lease is gone once the build is finished.
    let (status, body) = run.put("late.txt", "file", b"x");
    assert_eq!(status, 409, "{body}");
}

#[test]
fn the_size_cap_counts_the_whole_build_and_unzipped_bytes() {
    let megatron = Megatron::start_with_flags(CYBERTRON, &["--max-artifact-mb", "1"]);
    let repo = GitRepo::new("arts", CONFIG);
    let (status, body) = megatron.post("/api/v1/repos", &json!({ "url": repo.url() }));
    assert!(status == 200 || status == 201, "{body}");
    let token = megatron.token("w1");
    let run = Run::start(&megatron.url, &token, || {
        let (status, body) = megatron.post("/api/v1/builders/arts-a/force", &json!({}));
        assert_eq!(status, 201, "{body}");
        body["build"].as_u64().expect("id")
    });

    // One upload over the cap.
    let (status, body) = run.put("big.bin", "file", &vec![7u8; (1 << 20) + 1]);
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("1 MiB")),
        "{body}"
    );
    // Two that fit one by one but not together.
    run.put_ok("one.bin", "file", &vec![1u8; 600 << 10]);
    let (status, body) = run.put("two.bin", "file", &vec![2u8; 600 << 10]);
    assert_eq!(status, 413, "{body}");
    // Replacing an artifact counts only the new bytes.
    run.put_ok("one.bin", "file", &vec![3u8; 700 << 10]);
    // A small zip that unzips past the cap.
    let zeros = vec![0u8; 4 << 20];
    let bomb = zip_of(&[("zeros", &zeros[..])]);
    assert!(bomb.len() < 100 << 10);
    let (status, body) = run.put("site", "zip", &bomb);
    assert_eq!(status, 413, "{body}");

    let artifacts = megatron
        .dir
        .join("data/artifacts")
        .join(run.build.to_string());
    let mut left: Vec<String> = std::fs::read_dir(&artifacts)
        .expect("artifact dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["one.bin"], "no partial file is left");
    assert_eq!(
        std::fs::metadata(artifacts.join("one.bin"))
            .expect("one")
            .len(),
        700 << 10
    );
}

#[test]
fn the_horizon_removes_a_builds_artifacts() {
    let megatron = Megatron::start(&CYBERTRON.replace("resources:", "horizon: 1, resources:"));
    let (_repo, token) = setup(&megatron);
    let first = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });
    first.put_ok("report.txt", "file", b"first");
    first.finish();
    let dir = megatron
        .dir
        .join("data/artifacts")
        .join(first.build.to_string());
    assert!(dir.join("report.txt").is_file());

    let second = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });
    second.put_ok("report.txt", "file", b"second");
    second.finish();
    assert!(!dir.exists(), "the first build's artifacts are gone");
    // Usage counts what is kept: one build, its six bytes.
    let (status, usage) = megatron.get("/api/v1/usage");
    assert_eq!(status, 200, "{usage}");
    let arts = usage["repos"]
        .as_array()
        .and_then(|repos| repos.iter().find(|r| r["repo"] == "arts"))
        .unwrap_or_else(|| panic!("no arts in {usage}"));
    assert_eq!(arts["builds"], 1, "{usage}");
    assert_eq!(arts["artifact_bytes"], 6, "{usage}");
    assert_eq!(arts["builders"][0]["builder"], "arts-a", "{usage}");
    assert_eq!(arts["builders"][0]["artifact_bytes"], 6, "{usage}");
    assert_eq!(usage["artifact_bytes"], 6, "{usage}");
    // The repo's page shows the same, per builder, once counted again.
    let row = r#"<td class="num">1</td><td class="num">0 bytes</td><td class="num">6 bytes</td>"#;
    let page = crate::common::system::wait_for(
        "the repo's page to show the count",
        Duration::from_secs(10),
        || Some(megatron.get_text("/repos/arts")).filter(|page| page.contains(row)),
    );
    assert!(page.contains("builds kept"), "{page}");
    assert!(page.contains("(counted "), "{page}");
    assert_eq!(
        megatron
            .get(&format!(
                "/api/v1/builds/{}/artifacts/report.txt",
                first.build
            ))
            .0,
        404
    );
    assert_eq!(
        megatron.get_text(&format!(
            "/api/v1/builds/{}/artifacts/report.txt",
            second.build
        )),
        "second"
    );
}

#[test]
fn partial_uploads_left_by_a_crash_are_gone_after_a_restart() {
    let mut megatron = Megatron::start(CYBERTRON);
    let build = megatron.dir.join("data/artifacts/7");
    std::fs::create_dir_all(build.join("site")).expect("mkdir");
    std::fs::write(build.join("kept.txt"), "kept").expect("write");
    std::fs::write(
        build.join("site/.constructicon-partial-0123"),
        vec![0u8; 1 << 20],
    )
    .expect("write");
    std::fs::create_dir_all(build.join(".constructicon-partial-4567/deep")).expect("mkdir");
    megatron.restart();
    assert!(build.join("kept.txt").is_file());
    assert!(!build.join("site/.constructicon-partial-0123").exists());
    assert!(!build.join(".constructicon-partial-4567").exists());
}

/// An upload by hand over a socket: the request line, headers announcing
/// `length` bytes, and then only what the test sends.
struct SlowUpload {
    stream: TcpStream,
}

impl SlowUpload {
    fn start(run: &Run, address: &str, path: &str, kind: &str, length: usize) -> SlowUpload {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            stream,
            "PUT /api/v1/worker/builds/{}/artifacts/{path}?lease={}&kind={kind} HTTP/1.1\r\n\
             host: {address}\r\nx-constructicon-worker: {}\r\nauthorization: Bearer {}\r\n\
             content-type: application/octet-stream\r\ncontent-length: {length}\r\n\r\n",
            run.build, run.lease, run.worker, run.token
        )
        .expect("send the head");
        SlowUpload { stream }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send the body");
        self.stream.flush().expect("flush");
    }

    /// The megatron's answer, read to the end: status and JSON body.
    fn answer(mut self) -> (u16, Value) {
        let mut text = Vec::new();
        // The megatron may answer and close before the whole body was sent.
        let _ = self.stream.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let body = serde_json::from_str(body).unwrap_or(Value::String(body.into()));
        (status, body)
    }
}

/// Every partial upload (temp name) under the megatron's artifacts, with
/// its size.
fn partials(megatron: &Megatron) -> Vec<(PathBuf, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".constructicon-partial-")
            {
                let size = entry.metadata().map_or(0, |m| m.len());
                out.push((path.clone(), size));
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&megatron.dir.join("data/artifacts"), &mut out);
    out
}

fn listing(megatron: &Megatron, build: u64) -> Value {
    let (status, listing) = megatron.get(&format!("/api/v1/builds/{build}/artifacts"));
    assert_eq!(status, 200, "{listing}");
    listing["artifacts"].clone()
}

/// A zip of many small files, deflated: more than a few reads of the body.
fn big_zip() -> Vec<u8> {
    let names: Vec<String> = (0..3000).map(|i| format!("page{i}.html")).collect();
    let pages: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| (0..100).map(|j| ((i * 31 + j * 7) % 251) as u8).collect())
        .collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&pages)
        .map(|(n, p)| (n.as_str(), p.as_slice()))
        .collect();
    zip_of(&files)
}

#[test]
fn an_unzip_that_outlives_its_lease_is_discarded_and_the_next_attempt_starts_empty() {
    // A lease of 1.5 s (the test timings); the test sends no heartbeat.
    let megatron = Megatron::start(CYBERTRON);
    let (_repo, token) = setup(&megatron);
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });
    run.put_ok("report.txt", "file", b"first attempt");
    assert_eq!(
        listing(&megatron, run.build).as_array().map(Vec::len),
        Some(1)
    );

    // Half of a site, then nothing while the lease runs out.
    let site = big_zip();
    let mut upload = SlowUpload::start(&run, &megatron.address, "site", "zip", site.len());
    upload.send(&site[..site.len() / 2]);
    wait_for(
        "the partial upload on disk",
        Duration::from_secs(10),
        || (!partials(&megatron).is_empty()).then_some(()),
    );
    let (status, body) = upload.answer();
    assert_eq!(status, 409, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("lease") && error.contains("discarded"),
        "{body}"
    );
    let build = megatron.build(run.build);
    assert_eq!(build["state"], "queued", "requeued: {build}");
    assert_eq!(partials(&megatron), [], "the partial upload is gone");
    // The requeued build has nothing of the attempt before.
    assert_eq!(listing(&megatron, run.build), json!([]));

    // The second attempt starts empty, and the first's lease stores nothing.
    let second = Run::start(&megatron.url, &token, || run.build);
    assert_ne!(second.lease, run.lease);
    assert_eq!(listing(&megatron, run.build), json!([]));
    // The megatron may refuse before it has read the whole body and close
    // the connection: a broken pipe is a refusal too.
    let late = agent()
        .put(&format!(
            "{}/api/v1/worker/builds/{}/artifacts/site?lease={}&kind=zip",
            run.url, run.build, run.lease
        ))
        .header("x-constructicon-worker", &run.worker)
        .header("authorization", &format!("Bearer {}", run.token))
        .send(&site[..]);
    if let Ok(mut answer) = late {
        let text = answer.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(answer.status().as_u16(), 409, "{text}");
    }
    let (status, body) = run.put("late.txt", "file", b"late");
    assert_eq!(status, 409, "{body}");
    assert_eq!(listing(&megatron, run.build), json!([]));
    second.put_ok("report.txt", "file", b"second attempt");
    assert_eq!(
        listing(&megatron, run.build),
        json!([{ "path": "report.txt", "size": 14 }])
    );
    second.finish();
}

#[test]
fn an_upload_under_way_stops_when_its_build_is_cancelled_or_finished() {
    let megatron = Megatron::start_with_flags(CYBERTRON, &["--lease-ms", "60000"]);
    let (_repo, token) = setup(&megatron);
    let site = big_zip();

    // Cancelled while the body arrives.
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });
    let mut upload = SlowUpload::start(&run, &megatron.address, "site", "zip", site.len());
    upload.send(&site[..site.len() / 2]);
    wait_for(
        "the partial upload on disk",
        Duration::from_secs(10),
        || (!partials(&megatron).is_empty()).then_some(()),
    );
    let (status, body) = megatron.post(&format!("/api/v1/builds/{}/cancel", run.build), &json!({}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = upload.answer();
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("cancelled")),
        "{body}"
    );
    assert_eq!(partials(&megatron), []);
    assert_eq!(listing(&megatron, run.build), json!([]));
    run.finish();

    // Finished while the body arrives.
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });
    let mut upload = SlowUpload::start(&run, &megatron.address, "report.txt", "file", 1 << 20);
    upload.send(&[1u8; 300 << 10]);
    wait_for(
        "the partial upload on disk",
        Duration::from_secs(10),
        || (!partials(&megatron).is_empty()).then_some(()),
    );
    run.finish();
    let (status, body) = upload.answer();
    assert_eq!(status, 409, "{body}");
    assert_eq!(partials(&megatron), []);
    assert_eq!(listing(&megatron, run.build), json!([]));
}

#[test]
fn a_partial_file_is_gone_when_its_request_ends() {
    let megatron = Megatron::start_with_flags(CYBERTRON, &["--lease-ms", "60000"]);
    let (_repo, token) = setup(&megatron);
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });

    // The client goes away halfway.
    let mut upload = SlowUpload::start(&run, &megatron.address, "big.bin", "file", 1 << 20);
    upload.send(&[5u8; 400 << 10]);
    let partial = wait_for(
        "the partial upload on disk",
        Duration::from_secs(10),
        || partials(&megatron).into_iter().next(),
    );
    assert!(partial.0.starts_with(megatron.dir.join("data/artifacts")));
    drop(upload);
    wait_for("the partial upload to go", Duration::from_secs(10), || {
        partials(&megatron).is_empty().then_some(())
    });

    // A body that ends in a refusal: a zip that is no zip.
    let (status, body) = run.put("site", "zip", &[0u8; 100 << 10]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(partials(&megatron), []);
    assert_eq!(listing(&megatron, run.build), json!([]));
    run.finish();
}

#[test]
fn bytes_in_flight_count_against_the_cap() {
    let megatron = Megatron::start_with_flags(
        CYBERTRON,
        &["--max-artifact-mb", "1", "--lease-ms", "60000"],
    );
    let (_repo, token) = setup(&megatron);
    let run = Run::start(&megatron.url, &token, || {
        megatron.force("arts-a", json!({}))
    });

    // 700 KiB under way, 650 of them received...
    let first = vec![1u8; 700 << 10];
    let mut upload = SlowUpload::start(&run, &megatron.address, "one.bin", "file", first.len());
    upload.send(&first[..650 << 10]);
    wait_for(
        "the first upload's bytes on disk",
        Duration::from_secs(10),
        || {
            partials(&megatron)
                .iter()
                .any(|(_, size)| *size == 650 << 10)
                .then_some(())
        },
    );
    // ...leave no room for another 600 KiB, though it would fit alone.
    let (status, body) = run.put("two.bin", "file", &vec![2u8; 600 << 10]);
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("1 MiB")),
        "{body}"
    );
    // A small one still fits beside it.
    run.put_ok("small.bin", "file", &[3u8; 100 << 10]);
    upload.send(&first[650 << 10..]);
    let (status, body) = upload.answer();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        listing(&megatron, run.build),
        json!([
            { "path": "one.bin", "size": 700 << 10 },
            { "path": "small.bin", "size": 100 << 10 },
        ])
    );
    // Once the first is stored, the second still does not fit.
    let (status, body) = run.put("two.bin", "file", &vec![2u8; 600 << 10]);
    assert_eq!(status, 413, "{body}");
    assert_eq!(partials(&megatron), []);
    run.finish();
}

mod in_process {
    //! The last gate, placed exactly: a requeue between an upload's last
    //! byte and its move into place.

    use super::{zip_of, CONFIG};
    use crate::common::system::GitRepo;
    use constructicon::config::{evaluate_cybertron, Limits};
    use constructicon::megatron::artifacts::{list_artifacts, ArtifactError};
    use constructicon::megatron::queue::ForceRequest;
    use constructicon::megatron::{Error, Options, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
    use constructicon::protocol::UploadKind;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn open(dir: &std::path::Path) -> Arc<State> {
        // Local repos allowed, as `Megatron::start` does.
        let script = format!(
            "{}\ncybertron.repos = #{{ allow: [\"/*\"] }};\n",
            crate::builds::CYBERTRON
        );
        let cybertron =
            evaluate_cybertron("cybertron.rhai", script.into_bytes(), &Limits::default())
                .value
                .expect("cybertron evaluates");
        State::open(Options {
            data_dir: dir.to_path_buf(),
            cybertron,
            timing: Timing::default(),
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            cybertron_path: None,
        })
        .expect("open the state")
    }

    #[test]
    fn an_upload_received_whole_is_not_moved_into_a_requeued_build() {
        let repo = GitRepo::new("arts", CONFIG);
        let data = tempfile::tempdir().expect("tempdir");
        let state = open(data.path());
        state.add_repo(&repo.url(), None).expect("repo");
        let build = state
            .force("arts-a", ForceRequest::default(), None)
            .expect("forced")
            .id;
        let job = state.try_claim("w1").expect("claim").expect("a job");
        let site = zip_of(&[("index.html", b"<p>"), ("css/site.css", b"p {}")]);

        // One upload lands before the requeue, one is received whole but
        // not yet in place when it comes.
        let mut once = Some(b"first".to_vec());
        let landed = state
            .begin_upload(build, "w1", &job.lease, "report.txt", UploadKind::File)
            .expect("begun")
            .write_all_from(|| once.take())
            .expect("written");
        state
            .finish_upload(landed, "w1", &job.lease)
            .expect("in place");
        let mut chunks = site.chunks(64).map(<[u8]>::to_vec);
        let received = state
            .begin_upload(build, "w1", &job.lease, "site", UploadKind::Zip)
            .expect("begun")
            .write_all_from(|| chunks.next())
            .expect("written");
        let dir = state.artifact_dir(build);
        assert_eq!(list_artifacts(&dir).expect("list").len(), 1);

        // The worker went silent: the lease runs out, the build is requeued.
        assert_eq!(
            state
                .expire_leases(Instant::now() + Duration::from_secs(3600))
                .expect("expired"),
            1
        );
        let error = state
            .finish_upload(received, "w1", &job.lease)
            .expect_err("refused");
        assert!(
            matches!(error, ArtifactError::Megatron(Error::LeaseLost(_))),
            "{error}"
        );
        assert_eq!(list_artifacts(&dir).expect("list"), []);
        assert!(!dir.exists(), "nothing made the folder again");
        let left: Vec<_> = std::fs::read_dir(data.path().join("artifacts"))
            .expect("artifacts")
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // The next attempt starts empty, and stores its own.
        let again = state.try_claim("w1").expect("claim").expect("a job");
        assert_eq!(again.build, build);
        let mut chunks = site.chunks(64).map(<[u8]>::to_vec);
        let upload = state
            .begin_upload(build, "w1", &again.lease, "site", UploadKind::Zip)
            .expect("begun")
            .write_all_from(|| chunks.next())
            .expect("written");
        state
            .finish_upload(upload, "w1", &again.lease)
            .expect("in place");
        let paths: Vec<String> = list_artifacts(&dir)
            .expect("list")
            .into_iter()
            .map(|a| a.path)
            .collect();
        assert_eq!(paths, ["site/css/site.css", "site/index.html"]);
    }
}
