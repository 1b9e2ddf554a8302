//! Artifacts end to end against the real megatron binary: the test plays the
//! worker over raw HTTP (claim, upload, finish) so each upload is exactly the
//! one the case needs, then reads the results back as a person would.
//! Covered: files, folders, a kept zip, an unzipped site with its link, bad
//! paths, wrong lease and token, zip-slip, the size cap, a restart, and the
//! horizon removing a build's artifacts.

use crate::builds::CYBERTRON;
use crate::common::system::{reply, GitRepo, Megatron};
use serde_json::{json, Value};
use std::io::Write;
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
