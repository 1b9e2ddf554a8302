//! Commit polling in process: a real megatron `State` on a temp data dir,
//! real bare git repos as origins, and `poll_pass` called directly (the loop
//! only repeats it). Each test checks the queue the passes leave behind.

use constructicon::config::{evaluate_cybertron, Limits};
use constructicon::megatron::{Options, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
use constructicon::store::{BuildRecord, BuildState};
use constructicon::triggers::poll::{url_key, PollReport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CYBERTRON: &str = r#"cybertron = #{
    repos: #{ allow: ["/*"] },
    workers: #{ w1: #{} },
    schedulers: #{ pushes: #{ type: "commit", branch_regex: "main", parameters: #{ from: "cybertron" } } },
};"#;

fn open(dir: &Path) -> Arc<State> {
    let evaluation = evaluate_cybertron(
        "cybertron.rhai",
        CYBERTRON.as_bytes().to_vec(),
        &Limits::default(),
    );
    let cybertron = evaluation.value.expect("cybertron evaluates");
    State::open(Options {
        data_dir: dir.to_path_buf(),
        cybertron,
        timing: Timing::default(),
        max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
        cybertron_path: None,
    })
    .expect("open the state")
}

/// A bare origin repo; commits go straight onto branch refs, no work tree.
struct Origin {
    path: PathBuf,
    _temp: tempfile::TempDir,
}

impl Origin {
    fn new(name: &str) -> Origin {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join(format!("{name}.git"));
        let mut options = git2::RepositoryInitOptions::new();
        options.bare(true).initial_head("main");
        git2::Repository::init_opts(&path, &options).expect("git init");
        Origin { path, _temp: temp }
    }

    fn url(&self) -> String {
        self.path.display().to_string()
    }

    /// Commits files on top of `branch` (a new branch starts from HEAD's
    /// commit); returns the commit id.
    fn commit(&self, branch: &str, files: &[(&str, &str)]) -> String {
        let repo = git2::Repository::open_bare(&self.path).expect("open origin");
        let refname = format!("refs/heads/{branch}");
        let parent = repo
            .find_reference(&refname)
            .ok()
            .or_else(|| repo.head().ok())
            .and_then(|r| r.peel_to_commit().ok());
        let base = parent.as_ref().map(|p| p.tree().expect("parent tree"));
        let mut tree = repo.treebuilder(base.as_ref()).expect("treebuilder");
        for (name, text) in files {
            let blob = repo.blob(text.as_bytes()).expect("blob");
            tree.insert(name, blob, 0o100644).expect("insert");
        }
        let tree = repo.find_tree(tree.write().expect("tree")).expect("tree");
        let signature = git2::Signature::now("test", "test@example.invalid").expect("signature");
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(
            Some(&refname),
            &signature,
            &signature,
            "change",
            &tree,
            &parents,
        )
        .expect("commit")
        .to_string()
    }

    /// A commit that changes a file other than the config.
    fn touch(&self, branch: &str) -> String {
        let stamp = format!("{:?}", Instant::now());
        self.commit(branch, &[("README", &stamp)])
    }
}

fn pass(state: &State) -> PollReport {
    state.poll_pass().expect("poll pass")
}

fn queued(state: &State) -> Vec<BuildRecord> {
    state.store.queued_builds().expect("queue")
}

fn short(commit: &str) -> &str {
    &commit[..7]
}

#[test]
fn commits_on_matching_branches_build_and_others_do_not() {
    let origin = Origin::new("hello");
    origin.commit(
        "main",
        &[(
            "constructicon.rhai",
            r#"constructicon = #{
    builders: #{ rel: #{ commands: ["true"], schedulers: ["releases"] } },
    schedulers: #{ releases: #{ type: "commit", branch_regex: "release-.*", parameters: #{ level: "full" } } },
};"#,
        )],
    );
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&origin.url(), None).expect("add repo");

    // The first poll of every branch only records it.
    let report = pass(&state);
    assert_eq!((report.repos, report.deps, report.failures), (1, 0, 0));
    assert_eq!(report.builds_started, 0);
    origin.touch("release-1");
    assert_eq!(pass(&state).builds_started, 0, "a new branch is recorded");
    assert!(queued(&state).is_empty());

    // A new commit on a matching branch builds that commit on that branch.
    let commit = origin.touch("release-1");
    assert_eq!(pass(&state).builds_started, 1);
    let builds = queued(&state);
    assert_eq!(builds.len(), 1);
    let build = &builds[0];
    assert_eq!(build.builder, "hello-rel");
    assert_eq!(build.revision, commit);
    assert_eq!(build.branch.as_deref(), Some("release-1"));
    assert_eq!(
        build.parameters.get("level").map(String::as_str),
        Some("full")
    );
    assert_eq!(
        build.reason,
        format!(
            "commit {} on release-1 of {} (scheduler hello-releases)",
            short(&commit),
            origin.url()
        )
    );

    // Nothing moved: nothing more.
    assert_eq!(pass(&state).builds_started, 0);

    // Non-matching branches, including ones the regex matches only a part
    // of, start nothing.
    for branch in ["feature", "old-release-1", "release"] {
        origin.touch(branch);
    }
    pass(&state);
    for branch in ["feature", "old-release-1", "release"] {
        origin.touch(branch);
    }
    origin.touch("main");
    let report = pass(&state);
    assert_eq!(report.builds_started, 0, "{report:?}");
    assert_eq!(queued(&state).len(), 1);
}

#[test]
fn branches_restrict_a_scheduler_to_one_branch_of_the_repo() {
    let origin = Origin::new("pinned");
    let config = format!(
        r#"constructicon = #{{
    builders: #{{ b: #{{ commands: ["true"], schedulers: ["stable_only"] }} }},
    schedulers: #{{ stable_only: #{{ type: "commit", branches: #{{ "{}": "stable" }} }} }},
}};"#,
        origin.url()
    );
    origin.commit("main", &[("constructicon.rhai", &config)]);
    origin.touch("stable");
    origin.touch("other");
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&origin.url(), None).expect("add repo");
    pass(&state);

    origin.touch("other");
    origin.touch("main");
    assert_eq!(pass(&state).builds_started, 0);
    let commit = origin.touch("stable");
    assert_eq!(pass(&state).builds_started, 1);
    let builds = queued(&state);
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].revision, commit);
    assert_eq!(builds[0].branch.as_deref(), Some("stable"));
}

#[test]
fn a_commit_on_a_dep_builds_the_dependent_builder_with_the_dep_pinned() {
    let lib = Origin::new("lib");
    lib.touch("main");
    let app = Origin::new("app");
    let config = format!(
        r#"constructicon = #{{
    builders: #{{
        b: #{{ commands: ["true"], deps: ["{lib}"], schedulers: ["pushes"] }},
        c: #{{ commands: ["true"], deps: ["{lib}/"] }},
    }},
}};"#,
        lib = lib.url()
    );
    let app_commit = app.commit("main", &[("constructicon.rhai", &config)]);
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&app.url(), None).expect("add repo");

    let report = pass(&state);
    assert_eq!((report.repos, report.deps, report.failures), (1, 1, 0));
    // One mirror for the dep, however its builders spell the URL.
    let mirrors: Vec<_> = std::fs::read_dir(data.path().join("deps"))
        .expect("deps folder")
        .collect();
    assert_eq!(mirrors.len(), 1);

    // A branch the scheduler does not take: nothing.
    lib.touch("topic");
    pass(&state);
    lib.touch("topic");
    assert_eq!(pass(&state).builds_started, 0);

    let lib_commit = lib.touch("main");
    assert_eq!(pass(&state).builds_started, 1);
    let builds = queued(&state);
    assert_eq!(builds.len(), 1);
    let build = &builds[0];
    assert_eq!(build.builder, "app-b");
    assert_eq!(build.revision, app_commit, "the app at its current commit");
    assert_eq!(build.pins.get(&lib.url()), Some(&lib_commit));
    assert_eq!(
        build.parameters.get("from").map(String::as_str),
        Some("cybertron")
    );
    assert_eq!(
        build.reason,
        format!(
            "commit {} on main of {} (scheduler pushes)",
            short(&lib_commit),
            lib.url()
        )
    );

    // A push announced by URL polls the dep now, however it is spelt.
    let lib_commit = lib.touch("main");
    let names = state
        .poll_url(&format!("{}/", lib.url()))
        .expect("poll url");
    assert_eq!(names, vec!["app".to_string()]);
    let builds = queued(&state);
    assert_eq!(builds.len(), 2);
    assert_eq!(builds[1].pins.get(&lib.url()), Some(&lib_commit));
}

#[test]
fn a_config_commit_reconfigures_and_leaves_existing_builds_alone() {
    let origin = Origin::new("cfg");
    let first = r#"constructicon = #{
    builders: #{ one: #{ commands: ["echo first"], schedulers: ["pushes"] } },
};"#;
    origin.commit("main", &[("constructicon.rhai", first)]);
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&origin.url(), None).expect("add repo");
    pass(&state);

    // A build that a worker is running when the config changes.
    origin.touch("main");
    let report = pass(&state);
    assert_eq!((report.reconfigured, report.builds_started), (1, 1));
    let running = queued(&state).remove(0);
    state
        .try_claim("w1")
        .expect("claim")
        .expect("a build to claim");
    // And one still waiting.
    origin.touch("main");
    pass(&state);
    let waiting = queued(&state).remove(0);

    let second = r#"constructicon = #{
    builders: #{
        one: #{ commands: ["echo second"], schedulers: ["pushes"] },
        two: #{ commands: ["true"], schedulers: ["pushes"] },
    },
};"#;
    let commit = origin.commit("main", &[("constructicon.rhai", second)]);
    let report = pass(&state);
    assert_eq!(report.reconfigured, 1);
    let repo = state.repos.read().expect("repos")["cfg"].clone();
    assert!(repo.record.error.is_none(), "{:?}", repo.record.error);
    assert_eq!(repo.record.commit.as_deref(), Some(commit.as_str()));
    let graph = repo.graph.expect("graph");
    assert!(graph.graph.builders.contains_key("cfg-two"));
    // The builds of this commit use the new graph: reconfigured first.
    assert_eq!(report.builds_started, 2);
    let new: Vec<BuildRecord> = queued(&state)
        .into_iter()
        .filter(|b| b.revision == commit)
        .collect();
    let mut builders: Vec<&str> = new.iter().map(|b| b.builder.as_str()).collect();
    builders.sort();
    assert_eq!(builders, ["cfg-one", "cfg-two"]);
    assert!(new.iter().all(|b| b.provenance.config_commit == commit));
    let one = new
        .iter()
        .find(|b| b.builder == "cfg-one")
        .expect("cfg-one");
    assert!(one.spec.steps.iter().any(|s| s.command == "echo second"));

    // The builds from before keep their spec and state.
    for before in [&running, &waiting] {
        let now = state.store.build(before.id).expect("build");
        assert_eq!(now.spec, before.spec);
        assert!(now.spec.steps.iter().any(|s| s.command == "echo first"));
    }
    assert_eq!(
        state.store.build(running.id).expect("build").state,
        BuildState::Running
    );
}

#[test]
fn a_broken_config_commit_keeps_the_last_good_graph_and_shows_the_error() {
    let origin = Origin::new("fragile");
    let good = r#"constructicon = #{
    builders: #{ one: #{ commands: ["true"], schedulers: ["pushes"] } },
};"#;
    origin.commit("main", &[("constructicon.rhai", good)]);
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    let added = state.add_repo(&origin.url(), None).expect("add repo");
    let good_version = added.graph.expect("graph").version;
    pass(&state);

    let broken = origin.commit(
        "main",
        &[("constructicon.rhai", "constructicon = #{ builders: 5 };")],
    );
    let report = pass(&state);
    assert_eq!(report.reconfigured, 1);
    let repo = state.repos.read().expect("repos")["fragile"].clone();
    let error = repo.record.error.expect("the error shows on the repo");
    assert_eq!(error.commit.as_deref(), Some(broken.as_str()));
    assert!(
        error.message.contains("constructicon.rhai"),
        "{}",
        error.message
    );
    let graph = repo.graph.expect("the last good graph serves");
    assert_eq!(graph.version, good_version);
    assert!(graph.graph.builders.contains_key("fragile-one"));
    // The commit still builds, with the last good graph.
    assert_eq!(report.builds_started, 1);
    let build = queued(&state).remove(0);
    assert_eq!(build.revision, broken);
    assert_eq!(build.provenance.graph_version, good_version);

    // Polling again does not evaluate the same broken commit again.
    assert_eq!(pass(&state).reconfigured, 0);

    // A fix clears the error.
    origin.commit("main", &[("constructicon.rhai", good)]);
    pass(&state);
    let repo = state.repos.read().expect("repos")["fragile"].clone();
    assert!(repo.record.error.is_none());
    assert!(repo.graph.expect("graph").version > good_version);
}

#[test]
fn an_unreachable_repo_shows_its_error_and_the_others_are_polled() {
    let config = r#"constructicon = #{
    builders: #{ b: #{ commands: ["true"], schedulers: ["pushes"] } },
};"#;
    let gone = Origin::new("gone");
    gone.commit("main", &[("constructicon.rhai", config)]);
    let fine = Origin::new("fine");
    fine.commit("main", &[("constructicon.rhai", config)]);
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&gone.url(), None).expect("add gone");
    state.add_repo(&fine.url(), None).expect("add fine");
    pass(&state);

    std::fs::remove_dir_all(&gone.path).expect("delete the origin");
    let commit = fine.touch("main");
    let report = pass(&state);
    assert_eq!((report.repos, report.failures), (2, 1), "{report:?}");
    assert_eq!(report.builds_started, 1);
    let builds = queued(&state);
    assert_eq!(builds.len(), 1);
    assert_eq!(
        (builds[0].builder.as_str(), builds[0].revision.as_str()),
        ("fine-b", commit.as_str())
    );

    let gone_repo = state.repos.read().expect("repos")["gone"].clone();
    let error = gone_repo.record.error.expect("the fetch error shows");
    assert_eq!(error.commit, None);
    assert!(error.message.contains("fetching"), "{}", error.message);
    assert!(gone_repo.graph.is_some(), "its last graph stays");

    // The same failure again is not written again.
    let report = pass(&state);
    assert_eq!(report.failures, 1);
    let again = state.repos.read().expect("repos")["gone"].clone();
    assert_eq!(again.record.error.map(|e| e.at), Some(error.at));
}

#[test]
fn a_restart_does_not_build_heads_already_seen() {
    let origin = Origin::new("durable");
    origin.commit(
        "main",
        &[(
            "constructicon.rhai",
            r#"constructicon = #{
    builders: #{ b: #{ commands: ["true"], schedulers: ["pushes"] } },
};"#,
        )],
    );
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&origin.url(), None).expect("add repo");
    pass(&state);
    origin.touch("main");
    assert_eq!(pass(&state).builds_started, 1);
    drop(state);

    let state = open(data.path());
    assert_eq!(pass(&state).builds_started, 0);
    assert_eq!(queued(&state).len(), 1);

    // A commit made while the megatron was down builds once it is back.
    drop(state);
    let commit = origin.touch("main");
    let state = open(data.path());
    assert_eq!(pass(&state).builds_started, 1);
    assert_eq!(
        queued(&state).last().map(|b| b.revision.clone()),
        Some(commit)
    );
}

#[test]
fn the_loop_polls_at_the_interval_and_unknown_repos_are_refused() {
    let origin = Origin::new("looped");
    origin.commit(
        "main",
        &[(
            "constructicon.rhai",
            r#"constructicon = #{
    builders: #{ b: #{ commands: ["true"], schedulers: ["pushes"] } },
};"#,
        )],
    );
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    assert!(state.poll_repo("nope").is_err());
    state.add_repo(&origin.url(), None).expect("add repo");
    assert_eq!(state.poll_interval(), Duration::from_secs(60));
    *state.poll_every.write().expect("poll_every") = Some(Duration::from_millis(20));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let looping = runtime.spawn(constructicon::triggers::poll::poll_loop(state.clone()));
    // The first passes record main; then a commit is picked up by the loop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state
        .store
        .branch_heads(url_key(&origin.url()))
        .expect("heads")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the loop never polled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let commit = origin.touch("main");
    while queued(&state).is_empty() {
        assert!(Instant::now() < deadline, "the loop never built the commit");
        std::thread::sleep(Duration::from_millis(10));
    }
    looping.abort();
    runtime.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(queued(&state)[0].revision, commit);
}

#[test]
fn a_remote_that_hangs_holds_up_no_other_repo() {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    // A git:// server that accepts and never answers: a fetch from it waits
    // until the connection drops.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let (stop, held) = (stop.clone(), held.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.lock().expect("held").push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };

    // Whatever happens below, a failure must end the test, not hang it:
    // this unblocks the hanging fetch and stops the server on the way out.
    struct Release {
        stop: Arc<AtomicBool>,
        held: Arc<Mutex<Vec<std::net::TcpStream>>>,
        runtime: Option<tokio::runtime::Runtime>,
    }
    impl Drop for Release {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
            if let Some(runtime) = self.runtime.take() {
                runtime.shutdown_timeout(Duration::from_secs(5));
            }
        }
    }
    let origin = Origin::new("patient");
    let config = format!(
        r#"constructicon = #{{
    builders: #{{ b: #{{ commands: ["true"], deps: ["git://127.0.0.1:{port}/hang"], schedulers: ["pushes"] }} }},
}};"#
    );
    origin.commit("main", &[("constructicon.rhai", &config)]);
    let data = tempfile::tempdir().expect("tempdir");
    let state = open(data.path());
    state.add_repo(&origin.url(), None).expect("add repo");
    *state.poll_every.write().expect("poll_every") = Some(Duration::from_millis(20));

    let release = Release {
        stop: stop.clone(),
        held: held.clone(),
        runtime: Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime"),
        ),
    };
    let runtime = release.runtime.as_ref().expect("runtime");
    let looping = runtime.spawn(constructicon::triggers::poll::poll_loop(state.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while state
        .store
        .branch_heads(url_key(&origin.url()))
        .expect("heads")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the loop never polled");
        std::thread::sleep(Duration::from_millis(10));
    }
    let commit = origin.touch("main");
    while queued(&state).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the hanging dep held up the repo"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(queued(&state)[0].revision, commit);
    // The dep is still being fetched: a pass now leaves it alone. (On a
    // loaded machine its connection may arrive a moment after the build.)
    while held.lock().expect("held").is_empty() {
        assert!(Instant::now() < deadline, "the dep's fetch never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The loop stops starting passes (its stuck one goes on, holding the
    // dep), so the pass below meets only the hanging dep as busy.
    looping.abort();
    // On a thread with a deadline: were the pass to wait for the hanging
    // fetch after all, this test fails instead of hanging the suite. A pass
    // the loop started just before it stopped may still hold the repo a
    // moment; the dep stays busy throughout.
    let report = loop {
        let (sender, receiver) = std::sync::mpsc::channel();
        let passing = state.clone();
        std::thread::spawn(move || {
            let _ = sender.send(passing.poll_pass());
        });
        let report = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("a pass does not wait for a hanging fetch")
            .expect("poll pass");
        if (report.repos, report.busy) == (1, 1) || Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((report.repos, report.busy), (1, 1), "{report:?}");

    drop(release);
    server.join().expect("server");
}
