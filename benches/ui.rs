//! The web UI's budgets, measured on a megatron served in this process
//! (release build) over loopback:
//!
//! - every page's time to answer with 100,000 builds in the store (median
//!   of 20 each), against a budget of 50 ms;
//! - what a build page with a 100 MB step log sends before "show all"
//!   (budget: about 1 MB), and what pages weigh besides logs (budget:
//!   100 KB);
//! - the idle megatron's CPU with a hundred live pages open (budget: 1 % of
//!   a core).
//!
//! Run with `cargo bench --bench ui` (or `scripts/bench`). It prints figures
//! and asserts nothing about them.

mod support;

use constructicon::config::{evaluate_cybertron, Limits};
use constructicon::megatron::{Options, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
use constructicon::protocol::BuildResult;
use constructicon::store::{now_ms, BuildState};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUILDS: u64 = 100_000;

const CONFIG: &str = r#"constructicon = #{
    builders: #{
        a: #{ commands: ["true"], schedulers: ["force"] },
        b: #{ commands: ["true"], schedulers: ["force"] },
        c: #{ commands: ["echo big"], schedulers: ["force"] },
    },
    schedulers: #{ force: #{ type: "force", parameters: #{ x: "1" } } },
};"#;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Bytes of the files under `dir`, recursively.
fn walkdir(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => walkdir(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let temp = tempfile::tempdir().expect("tempdir");
    let repo = temp.path().join("ui");
    support::git_repo(&repo, CONFIG);
    let cybertron = evaluate_cybertron(
        "cybertron.rhai",
        br#"cybertron = #{ workers: #{ w1: #{} }, horizon: 1000000, repos: #{ allow: ["/*"] } };"#
            .to_vec(),
        &Limits::default(),
    )
    .value
    .expect("cybertron");
    let state = State::open(Options {
        data_dir: temp.path().join("data"),
        cybertron,
        timing: Timing::default(),
        max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
        cybertron_path: None,
    })
    .expect("state");
    state
        .add_repo(&repo.display().to_string(), None)
        .expect("repo");

    // 100,000 finished builds, written straight to the store, flushed every
    // 1,000 as the megatron's own acknowledgements would (sled 0.34 can stall
    // with hundreds of thousands of writes waiting for one flush).
    let seeding = Instant::now();
    let data_dir = temp.path().join("data");
    let store_bytes = || -> u64 { walkdir(&data_dir.join("store")) };
    let mut size_per_10k = Vec::new();
    let template = state
        .force("ui-a", Default::default(), Some("bench"))
        .expect("a first build");
    let mut ids = Vec::new();
    for i in 0..BUILDS {
        let builder = ["ui-a", "ui-b"][(i % 2) as usize];
        let mut record = template.clone();
        record.builder = builder.to_string();
        record.state = BuildState::Queued;
        let mut build = state.store.create_build(record).expect("create");
        build.state = BuildState::Finished;
        build.result = Some(if i % 7 == 0 {
            BuildResult::Failure
        } else {
            BuildResult::Success
        });
        build.started = Some(now_ms() - 5_000);
        build.finished = Some(now_ms());
        state.store.put_build(&build).expect("finish");
        ids.push(build.id);
        if (i + 1) % 1_000 == 0 {
            state.store.flush().expect("flush");
        }
        if (i + 1) % 10_000 == 0 {
            size_per_10k.push(store_bytes());
        }
    }
    // A build with a 100 MB log in its step.
    let mut big = state
        .store
        .create_build({
            let mut r = template.clone();
            r.builder = "ui-c".into();
            r
        })
        .expect("big");
    let line = b"a line of output from a chatty step, nothing to see here, really\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(256 << 10).collect();
    let chunks = (100 << 20) / chunk.len();
    for n in 0..chunks {
        state
            .store
            .append_log(big.id, 1, (n * chunk.len()) as u64, &chunk)
            .expect("log");
    }
    big.state = BuildState::Finished;
    big.result = Some(BuildResult::Success);
    big.steps[1].log_bytes = (chunks * chunk.len()) as u64;
    big.steps[1].log_lines = big.steps[1].log_bytes / line.len() as u64;
    big.steps[1].result = Some(BuildResult::Success);
    state.store.put_build(&big).expect("big");
    state.store.flush().expect("flush");
    println!(
        "seeded {BUILDS} builds and a 100 MB log in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let growth: Vec<String> = size_per_10k
        .windows(2)
        .map(|w| format!("{:.1}", (w[1] as f64 - w[0] as f64) / 1e6))
        .collect();
    println!(
        "store size on disk after each 10,000 finished builds: {} MB; growth per 10,000: [{}] MB",
        size_per_10k
            .iter()
            .map(|b| format!("{:.1}", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", "),
        growth.join(", ")
    );
    // The dispatcher would be rebuilt from the store on a restart; the
    // seeded builds are finished, so it has nothing to restore.

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let served: Arc<State> = state.clone();
    runtime.spawn(constructicon::server::serve_state(
        listener,
        served,
        std::future::pending(),
    ));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let fetch = |path: &str| -> (Duration, usize) {
        let started = Instant::now();
        let mut response = agent.get(&format!("{url}{path}")).call().expect("page");
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .expect("body");
        (started.elapsed(), body.len())
    };
    let middle = ids[ids.len() / 2];
    let oldest_number = 10u64;
    let pages = [
        ("home", "/".to_string()),
        ("builder, newest page", "/builders/ui-a".to_string()),
        (
            "builder, oldest page",
            format!("/builders/ui-a?before={}", oldest_number + 25),
        ),
        ("build", format!("/builds/{middle}")),
        ("queue", "/queue".to_string()),
        ("workers", "/workers".to_string()),
        ("repo", "/repos/ui".to_string()),
        ("build with a 100 MB log", format!("/builds/{}", big.id)),
        (
            "search of the 100 MB log",
            format!("/builds/{}/steps/1?q=nothing+to+see+here+at+all", big.id),
        ),
    ];
    println!("\npage (100,000 builds in the store)        median ms   max ms   bytes");
    for (name, path) in &pages {
        let _ = fetch(path);
        let mut times = Vec::new();
        let mut size = 0;
        let runs = if name.starts_with("search") { 3 } else { 20 };
        for _ in 0..runs {
            let (took, bytes) = fetch(path);
            times.push(took.as_secs_f64() * 1000.0);
            size = bytes;
        }
        let max = times.iter().cloned().fold(0.0, f64::max);
        println!("{name:<42} {:>9.1} {:>8.1} {:>7}", median(times), max, size);
    }

    // A hundred live pages, held open while the megatron idles.
    let mut streams = Vec::new();
    for _ in 0..100 {
        let url = format!("{url}/events");
        streams.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(40)))
                .build()
                .into();
            if let Ok(mut response) = agent.get(&url).call() {
                let mut sink = [0u8; 4096];
                let mut reader = response.body_mut().as_reader();
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_seconds();
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let used = cpu_seconds() - before;
    println!(
        "\n100 live pages open, idle megatron: {:.2} % of a core over {} s",
        used / window.as_secs_f64() * 100.0,
        window.as_secs()
    );
    println!("targets: each page < 20 ms with 100,000 builds (budget 50 ms); store size per 10,000 builds reported");
    std::process::exit(0);
}
