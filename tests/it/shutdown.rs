//! Stopping cleanly and fast: a megatron with workers long-polling it, and
//! the demo with a build under way.

use crate::common::system::{wait_for, Megatron, Worker, BIN};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn interrupt(pid: u32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
}

#[test]
fn a_megatron_with_long_polling_workers_stops_within_a_second() {
    // The workers' claims are held 2 s: longer than the stop may take.
    let mut megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{}, w2: #{} } };"#);
    let _w1 = Worker::start(&megatron, "w1");
    let _w2 = Worker::start(&megatron, "w2");
    wait_for("both workers to be online", Duration::from_secs(10), || {
        let (_, workers) = megatron.get("/api/v1/workers");
        let online = workers["workers"]
            .as_array()?
            .iter()
            .filter(|w| w["online"] == true)
            .count();
        (online == 2).then_some(())
    });
    // Let them settle into their claim long-polls.
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    megatron.signal(libc::SIGINT);
    let status = megatron.wait_exit(Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(1),
        "the megatron took {took:?} to stop"
    );
}

#[test]
fn the_demo_stops_its_worker_first_and_the_build_goes_back_to_the_queue() {
    let data = tempfile::tempdir().expect("data");
    let mut demo = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo");
    let mut stdout = BufReader::new(demo.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    let url = first
        .trim()
        .strip_prefix("constructicon demo is up: ")
        .expect("the demo's address")
        .trim_end_matches('/')
        .to_string();
    let mut rest = String::new();
    for _ in 0..8 {
        stdout.read_line(&mut rest).expect("line");
    }
    let token = rest
        .split("CONSTRUCTICON_USER_TOKEN=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("a token for the command line")
        .to_string();
    let (status, forced) = crate::common::system::reply(
        ureq::post(&format!("{url}/api/v1/builders/hello-sleep/force"))
            .config()
            .http_status_as_error(false)
            .build()
            .header("authorization", &format!("Bearer {token}"))
            .send_json(serde_json::json!({})),
    );
    assert_eq!(status, 201, "{forced}");
    let id = forced["build"].as_u64().expect("id");
    wait_for("the build to run", Duration::from_secs(20), || {
        let (_, build): (u16, Value) =
            crate::common::system::reply(ureq::get(&format!("{url}/api/v1/builds/{id}")).call());
        (build["state"] == "running").then_some(())
    });
    let asked = Instant::now();
    interrupt(demo.id());
    let status = wait_for("the demo to exit", Duration::from_secs(10), || {
        demo.try_wait().expect("wait")
    });
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(2),
        "the demo took {took:?} to stop"
    );
    let mut errors = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().expect("stderr"), &mut errors)
        .expect("stderr");
    assert!(
        !errors.contains("retrying"),
        "the worker outlived the megatron: {errors}"
    );

    // The build was given back: a megatron on the demo's data finds it queued.
    let cybertron = data.path().join("cybertron.rhai");
    std::fs::write(
        &cybertron,
        include_str!("../../examples/demo/cybertron.rhai"),
    )
    .expect("cybertron");
    let mut megatron = Command::new(BIN)
        .arg("megatron")
        .arg("--cybertron")
        .arg(&cybertron)
        .arg("--data")
        .arg(data.path().join("megatron"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("megatron");
    let mut lines = BufReader::new(megatron.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("the address").expect("read");
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let url = line
        .trim()
        .trim_start_matches("megatron listening on ")
        .to_string();
    let (_, build) =
        crate::common::system::reply(ureq::get(&format!("{url}/api/v1/builds/{id}")).call());
    let _ = megatron.kill();
    let _ = megatron.wait();
    assert_eq!(build["state"], "queued", "{build}");
    assert_eq!(build["attempts"], 0, "{build}");
}
