//! The deps, `get` and `upload` steps in a build's layout: what they fetch
//! and send, heartbeats during an upload, and their failures as step
//! failures.

use super::*;
use crate::config::spec::DepSpec;
use crate::protocol::GetJob;

#[test]
fn deps_get_and_upload_run_in_the_layouts_steps() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let libs = tempfile::tempdir().unwrap();
    let lib_dir = libs.path().join("lib");
    std::fs::create_dir_all(&lib_dir).unwrap();
    let lib_commit = upstream(&lib_dir);
    let lib_url = lib_dir.to_str().unwrap().to_string();
    let megatron = FakeMegatron::start();
    let mut job = job(
        7,
        repo_dir.path(),
        &commit,
        vec![
            step(
                "command 1",
                "cat ../lib/a.txt ../hello-lib/one.txt '../hello-lib/dir/t wo.txt'; \
                 mkdir -p out/sub zipme; echo A > out/a.txt; echo B > out/sub/b.txt; \
                 echo Z > zipme/z.txt; ln -s /etc out/etc; echo R > report.txt",
            ),
            step("command 2", "exit 3"),
            step("command 3", "echo never"),
        ],
    );
    job.deps = vec![DepSpec {
        url: lib_url.clone(),
        name: "lib".into(),
        revision: None,
        builder: None,
    }];
    job.get = vec![GetJob {
        builder: "hello-lib".into(),
        folder: "hello-lib".into(),
        build: Some(41),
        reason: None,
    }];
    job.upload = BTreeMap::from([
        ("out".to_string(), "results".to_string()),
        ("zipme".to_string(), "zipped".to_string()),
        ("report.txt".to_string(), "report.txt".to_string()),
    ]);
    job.zip = vec!["zipme".into()];
    job.max_upload_bytes = 1 << 20;
    {
        let mut state = megatron.state();
        state.artifacts.insert(
            41,
            vec![
                ("one.txt".into(), "first\n".into()),
                ("dir/t wo.txt".into(), "second\n".into()),
            ],
        );
        state.jobs.push_back(job);
    }
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for_end(7);

    // Layout: 0 checkout, 1 get, 2..=4 the commands, 5 upload; command 3
    // is skipped after command 2 failed, the upload is not.
    let reports: Vec<String> = megatron
        .reports()
        .into_iter()
        .filter(|p| !p.starts_with("/api/v1/builds/"))
        .map(|p| p.split('?').next().unwrap().to_string())
        .collect();
    assert_eq!(
        reports,
        [
            "builds/7/steps/0/finish",
            "builds/7/steps/1/finish",
            "builds/7/steps/2/finish",
            "builds/7/steps/3/finish",
            "builds/7/artifacts/results/a.txt",
            "builds/7/artifacts/results/sub/b.txt",
            "builds/7/artifacts/report.txt",
            "builds/7/artifacts/zipped",
            "builds/7/steps/5/finish",
        ]
    );
    // The failed command goes on to the upload, step 4 never starts.
    assert_eq!(
        megatron.find("builds/7/steps/3/finish").unwrap().json()["next"],
        5
    );
    assert!(!megatron.started(7, 4));
    assert_eq!(
        megatron.find("builds/7/steps/0/finish").unwrap().json()["revisions"],
        serde_json::json!({
            repo_dir.path().to_str().unwrap(): commit,
            lib_url: lib_commit,
        })
    );
    assert!(
        megatron.log(7, 1).contains("got 2 files"),
        "{}",
        megatron.log(7, 1)
    );
    assert_eq!(megatron.log(7, 2), "one\nfirst\nsecond\n");
    let finish = megatron.build_end(7).unwrap();
    assert_eq!(finish["result"], "failure");
    assert_eq!(finish["reason"], "command 2: exit code 3");
    assert_eq!(
        megatron.find("builds/7/steps/5/finish").unwrap().json()["result"],
        "success"
    );
    let upload_log = megatron.log(7, 5);
    assert!(
        upload_log.contains("skipping etc: a symlink"),
        "{upload_log}"
    );

    // The downloads went out encoded, the uploads with kind and lease.
    let paths: Vec<String> = megatron
        .state()
        .requests
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(paths.contains(&"/api/v1/builds/41/artifacts/dir/t%20wo.txt".to_string()));
    let puts: Vec<Recorded> = megatron
        .state()
        .requests
        .iter()
        .filter(|r| r.method == "PUT")
        .cloned()
        .collect();
    assert_eq!(
        puts[2].path,
        "builds/7/artifacts/report.txt?lease=lease%2F1%20x&kind=file"
    );
    assert_eq!(puts[2].body, b"R\n");
    assert!(puts[2]
        .headers
        .contains(&("x-constructicon-worker".into(), "w1".into())));
    assert_eq!(puts[1].body, b"B\n");
    assert_eq!(
        puts[3].path,
        "builds/7/artifacts/zipped?lease=lease%2F1%20x&kind=zip"
    );
    let archive = zip::ZipArchive::new(std::io::Cursor::new(puts[3].body.clone())).unwrap();
    assert_eq!(archive.file_names().collect::<Vec<_>>(), ["z.txt"]);
}

#[test]
fn heartbeats_go_on_while_an_upload_is_under_way() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    let mut job = job(
        8,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "echo R > report.txt")],
    );
    job.upload = BTreeMap::from([("report.txt".to_string(), "report.txt".to_string())]);
    {
        let mut state = megatron.state();
        state.hold_uploads = true;
        state.jobs.push_back(job);
    }
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for("the upload", |s| {
        s.requests.iter().any(|r| r.method == "PUT")
    });
    let beats = |s: &fake::State| {
        s.requests
            .iter()
            .filter(|r| r.path == "builds/8/heartbeat")
            .count()
    };
    let before = beats(&megatron.state());
    // The upload's answer is held: only a heartbeat thread of its own can
    // keep the lease meanwhile.
    megatron.wait_for("heartbeats while the upload is held", |s| {
        beats(s) >= before + 3
    });
    megatron.state().hold_uploads = false;
    megatron.wait_for_end(8);
    let finish = megatron.build_end(8).unwrap();
    assert_eq!(finish["result"], "success", "{finish}");
}

#[test]
fn get_and_upload_failures_are_step_failures() {
    let repo_dir = tempfile::tempdir().unwrap();
    let commit = upstream(repo_dir.path());
    let megatron = FakeMegatron::start();
    // No build to get from: the get step fails, the commands do not run.
    let mut nothing = job(
        10,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "true")],
    );
    nothing.get = vec![GetJob {
        builder: "hello-lib".into(),
        folder: "hello-lib".into(),
        build: None,
        reason: Some("no successful build of hello-lib".into()),
    }];
    // Over the cap: refused before sending.
    let mut big = job(
        11,
        repo_dir.path(),
        &commit,
        vec![step("command 1", "head -c 1100000 /dev/zero > big")],
    );
    big.upload = BTreeMap::from([("big".to_string(), "big".to_string())]);
    big.max_upload_bytes = 1 << 20;
    megatron.state().jobs.extend([nothing, big]);
    let _worker = RunningWorker::start(&megatron);
    megatron.wait_for_end(11);
    assert_eq!(
        megatron.build_end(10).unwrap()["reason"],
        "get: no successful build of hello-lib"
    );
    assert!(!megatron.started(10, 2));
    assert_eq!(
        megatron.build_end(11).unwrap()["reason"],
        "upload: uploads exceed the megatron's cap of 1 MiB"
    );

    // The megatron refuses: its message is the step's.
    let mut refused = job(12, repo_dir.path(), &commit, vec![]);
    refused.upload = BTreeMap::from([("a.txt".to_string(), "a.txt".to_string())]);
    {
        let mut state = megatron.state();
        state.refuse_uploads = Some("the build's uploads exceed 0 MiB".into());
        state.jobs.push_back(refused);
    }
    megatron.wait_for_end(12);
    assert_eq!(
        megatron.build_end(12).unwrap()["reason"],
        "upload: uploading a.txt: the build's uploads exceed 0 MiB"
    );
}
