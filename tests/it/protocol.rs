//! The worker protocol's folded calls, spoken over HTTP as a worker would:
//! the claim starts the first step; a step's finish carries the checkout's
//! revisions, the next step's start, or the build's end; contradictory or
//! out-of-order folds are refused and change nothing; the separate calls
//! still work.

use crate::common::system::{GitRepo, Megatron};
use serde_json::{json, Value};

const CYBERTRON: &str = r#"cybertron = #{ workers: #{ w1: #{} } };"#;

struct FakeWorker<'a> {
    megatron: &'a Megatron,
    bearer: String,
}

impl FakeWorker<'_> {
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.megatron.post_with(
            &format!("/api/v1/worker/{path}"),
            body,
            &[
                ("x-constructicon-worker", "w1"),
                ("authorization", &self.bearer),
            ],
        )
    }

    fn claim(&self) -> Value {
        let (status, job) = self.post("claim", &json!({ "wait_ms": 5000 }));
        assert_eq!(status, 200, "{job}");
        job
    }
}

fn repo() -> GitRepo {
    GitRepo::new(
        "folded",
        r#"constructicon = #{
    builders: #{ two: #{ commands: ["true", "true"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    )
}

#[test]
fn a_build_reported_in_folded_calls_ends_as_its_last_step_says() {
    let repo = repo();
    let megatron = Megatron::start(CYBERTRON);
    megatron.add_repo(&repo.url());
    let worker = FakeWorker {
        megatron: &megatron,
        bearer: format!("Bearer {}", megatron.token("w1")),
    };
    let id = megatron.force("folded-two", json!({}));
    let job = worker.claim();
    assert_eq!(job["build"], id);
    assert_eq!(job["first_step_started"], true, "{job}");
    assert_eq!(job["folded_reports"], true, "{job}");
    let lease = job["lease"].as_str().expect("lease").to_string();
    let build = megatron.build(id);
    assert!(build["steps"][0]["started"].is_u64(), "{build}");
    assert!(build["steps"][1]["started"].is_null(), "{build}");

    // Refused folds change nothing.
    let before = megatron.build(id);
    let both = json!({ "lease": lease, "result": "success", "exit_code": 0, "reason": null,
        "next": 1, "build": { "result": "success", "reason": null } });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/0/finish"), &both);
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap_or("").contains("not both"));
    let backwards =
        json!({ "lease": lease, "result": "success", "exit_code": 0, "reason": null, "next": 0 });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/1/finish"), &backwards);
    assert_eq!(status, 400, "{answer}");
    let beyond =
        json!({ "lease": lease, "result": "success", "exit_code": 0, "reason": null, "next": 9 });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/0/finish"), &beyond);
    assert_eq!(status, 404, "{answer}");
    let stale = json!({ "lease": "not the lease", "result": "success", "exit_code": 0, "reason": null, "next": 1 });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/0/finish"), &stale);
    assert_eq!(status, 409, "{answer}");
    assert_eq!(megatron.build(id), before);

    let not_base64 = json!({ "lease": lease, "result": "success", "exit_code": 0, "reason": null,
        "log": { "offset": 0, "base64": "no!" } });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/0/finish"), &not_base64);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(megatron.build(id), before);

    // The checkout's end with the rest of its output, its revisions and
    // the next step's start. A log call sent the output's first part.
    let (status, answer) = megatron.post_raw_with(
        &format!("/api/v1/worker/builds/{id}/steps/0/log?lease={lease}&offset=0"),
        b"fetched\n".to_vec(),
        &[
            ("x-constructicon-worker", "w1"),
            ("authorization", &worker.bearer),
        ],
    );
    assert_eq!(status, 200, "{answer}");
    let head = repo.commit(&[("x.txt", "x")], "x");
    // "checked out\n" at offset 8, in base64.
    let checkout = json!({ "lease": lease, "result": "success", "exit_code": null, "reason": null,
        "revisions": { repo.url(): head }, "next": 1,
        "log": { "offset": 8, "base64": "Y2hlY2tlZCBvdXQK" } });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/0/finish"), &checkout);
    assert_eq!(status, 200, "{answer}");
    // Sent again (its answer lost), it stores the output once.
    let (status, answer) = worker.post(&format!("builds/{id}/steps/0/finish"), &checkout);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(megatron.log(id, 0), "fetched\nchecked out\n");
    let build = megatron.build(id);
    assert_eq!(build["steps"][0]["result"], "success");
    assert!(build["steps"][1]["started"].is_u64(), "{build}");
    assert!(build["steps"][1]["finished"].is_null(), "{build}");
    assert_eq!(build["revisions"][repo.url()], head.as_str(), "{build}");
    assert_eq!(build["state"], "running");

    // The separate start call still works (a worker from before the folds).
    let (status, answer) = worker.post(
        &format!("builds/{id}/steps/2/start"),
        &json!({ "lease": lease }),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = worker.post(
        &format!("builds/{id}/steps/1/finish"),
        &json!({ "lease": lease, "result": "success", "exit_code": 0, "reason": null }),
    );
    assert_eq!(status, 200, "{answer}");

    // The last step's end carries the build's.
    let last = json!({ "lease": lease, "result": "failure", "exit_code": 1, "reason": null,
        "build": { "result": "failure", "reason": "command 2: exit code 1" } });
    let (status, answer) = worker.post(&format!("builds/{id}/steps/2/finish"), &last);
    assert_eq!(status, 200, "{answer}");
    let build = megatron.build(id);
    assert_eq!(build["state"], "finished", "{build}");
    assert_eq!(build["result"], "failure");
    assert_eq!(build["result_reason"], "command 2: exit code 1");
    assert_eq!(build["steps"][2]["exit_code"], 1);
    // The lease is spent: nothing more changes the build.
    let (status, _) = worker.post(
        &format!("builds/{id}/finish"),
        &json!({ "lease": lease, "result": "success", "reason": null }),
    );
    assert_eq!(status, 409);

    // The worker is free: the next build reaches it.
    let next = megatron.force("folded-two", json!({}));
    assert_eq!(worker.claim()["build"], next);
}
