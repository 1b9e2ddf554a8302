//! Evaluating whole scripts end to end: a cybertron and a repo's
//! constructicon into a graph, with the errors each rule gives. They sit in
//! a file of their own, beside the evaluation code in `mod.rs`, to keep that
//! file short enough to read.

use super::spec::SecretSource;
use super::*;

fn cybertron(source: &str) -> Arc<Cybertron> {
    let evaluation = evaluate_cybertron(
        "cybertron.rhai",
        source.as_bytes().to_vec(),
        &Limits::default(),
    );
    assert_eq!(evaluation.errors, vec![], "cybertron has errors");
    Arc::new(evaluation.value.expect("cybertron evaluates"))
}

fn repo(name: &str, source: &str, cybertron: &Arc<Cybertron>) -> Evaluation<Graph> {
    let input = RepoInput {
        name: name.into(),
        file: CONSTRUCTICON_FILE.into(),
        bytes: source.as_bytes().to_vec(),
        loader: None,
    };
    evaluate_repo(input, cybertron.clone(), &Limits::default())
}

fn messages<T>(evaluation: &Evaluation<T>) -> Vec<String> {
    evaluation.errors.iter().map(ToString::to_string).collect()
}

const CYBERTRON: &str = r#"
cybertron = #{
    workers: #{ big: #{ platform: "linux", memory: 64 }, small: #{ platform: "linux", memory: 1 }, bare: #{} },
    builder_base: #{
        accept: `features.memory != () && features.memory > 2`,
        precommands: ["base pre"],
        commands: ["base post"],
        deps: ["https://example.com/tools.git"],
        upload: #{ "log.txt": "logs/log.txt" },
        url: #{ "logs/log.txt": "" },
        schedulers: ["nightly"],
        resources: ["lab"],
    },
    schedulers: #{ nightly: #{ type: "time", hour: 3 } },
    resources: ["lab", "gpu"],
};
"#;

#[test]
fn builder_base_merges_as_the_spec_says() {
    let cybertron = cybertron(CYBERTRON);
    let evaluation = repo(
        "hello",
        r#"constructicon = #{
                builders: #{ b: #{
                    precommands: ["own pre"],
                    commands: ["one", "two"],
                    deps: ["https://example.com/lib.git"],
                    upload: #{ "out": "out" },
                    schedulers: ["manual"],
                    resources: ["gpu"],
                } },
                schedulers: #{ manual: #{ type: "force" } },
            };"#,
        &cybertron,
    );
    assert_eq!(messages(&evaluation), Vec::<String>::new());
    let graph = evaluation.value.expect("graph");
    let builder = &graph.builders["hello-b"];
    let steps: Vec<(&str, &str)> = builder
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.command.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("cybertron precommand 1", "base pre"),
            ("precommand 1", "own pre"),
            ("command 1", "one"),
            ("command 2", "two"),
            ("cybertron command 1", "base post"),
        ]
    );
    assert_eq!(builder.workers, ["big"], "base accept must hold as well");
    let deps: Vec<&str> = builder.deps.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deps, ["lib", "tools"]);
    assert_eq!(builder.upload.len(), 2);
    assert_eq!(
        builder.url.get("logs/log.txt").map(String::as_str),
        Some("")
    );
    assert_eq!(builder.schedulers, ["hello-manual", "nightly"]);
    assert_eq!(builder.resources, ["gpu", "lab"]);
    assert_eq!(graph.schedulers["nightly"].builders, ["hello-b"]);
    assert!(graph.schedulers["nightly"].cybertron);
    assert_eq!(graph.cybertron_hash, cybertron.hash);
    assert_eq!(graph.config_hash.len(), 64);
}

#[test]
fn clashes_with_builder_base_are_errors() {
    let cybertron = cybertron(CYBERTRON);
    let evaluation = repo(
        "hello",
        r#"constructicon = #{
                builders: #{ b: #{
                    commands: ["x"],
                    upload: #{ "mine.txt": "logs/log.txt" },
                    url: #{ "logs/log.txt": "x" },
                } },
                schedulers: #{ nightly: #{ type: "force" } },
            };"#,
        &cybertron,
    );
    assert_eq!(
        messages(&evaluation),
        [
            r#"constructicon.rhai:4:32: builders.b.upload["mine.txt"]: upload destination "logs/log.txt" clashes with builder_base's upload of "log.txt""#,
            r#"constructicon.rhai:5:29: builders.b.url["logs/log.txt"]: url destination "logs/log.txt" clashes with builder_base's url for it"#,
            r#"constructicon.rhai:7:32: schedulers.nightly: scheduler "nightly" is already defined by cybertron; choose another name"#,
        ]
    );
}

#[test]
fn user_workers_serve_only_their_own_repo() {
    let cybertron = cybertron(r#"cybertron = #{ workers: #{ common: #{ platform: "linux" } } };"#);
    let source = r#"constructicon = #{
            builders: #{ mine: #{ accept: `features.owner == "ana"`, commands: ["x"] }, any: #{ commands: ["y"] } },
            workers: #{ "hello-ana": #{ owner: "ana" } },
        };"#;
    let graph = repo("hello", source, &cybertron).value.expect("graph");
    assert_eq!(graph.builders["hello-mine"].workers, ["hello-ana"]);
    assert_eq!(graph.builders["hello-any"].workers, ["common", "hello-ana"]);
    // Another repo does not see hello's worker.
    let other = repo(
        "other",
        r#"constructicon = #{ builders: #{ mine: #{ accept: `features.owner == "ana"`, commands: ["x"] } } };"#,
        &cybertron,
    );
    assert_eq!(
        messages(&other),
        ["constructicon.rhai:1:33: builders.mine: no worker accepts this builder: accept `features.owner == \"ana\"` holds for none of the workers (common)"]
    );
}

#[test]
fn accept_errors_name_the_expression_and_worker() {
    let cybertron = cybertron(r#"cybertron = #{ workers: #{ w: #{ n: 1 } } };"#);
    let evaluation = repo(
        "r",
        r#"constructicon = #{ builders: #{ a: #{ accept: "features.n", commands: ["x"] }, b: #{ accept: "features.n +", commands: ["x"] } } };"#,
        &cybertron,
    );
    let messages = messages(&evaluation);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains(
            "accept expression `features.n` must give a bool, but gave an integer for worker \"w\""
        ),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("invalid accept expression `features.n +`"),
        "{}",
        messages[1]
    );
}

#[test]
fn reserved_words_as_keys_get_a_hint() {
    let evaluation = repo(
        "r",
        "constructicon = #{ builders: #{ go: #{ commands: [] } } };",
        &Arc::new(default_cybertron()),
    );
    assert_eq!(
        messages(&evaluation),
        ["constructicon.rhai:1:33: syntax error: 'go' is a reserved keyword; to use it as a map key, quote it: \"go\": ..."]
    );
}

#[test]
fn a_builders_own_deps_are_read_without_a_cybertron() {
    let input = |source: &str| RepoInput {
        name: "lib".into(),
        file: CONSTRUCTICON_FILE.into(),
        bytes: source.as_bytes().to_vec(),
        loader: None,
    };
    let source = r#"constructicon = #{ builders: #{ build: #{ deps: ["https://example.com/a.git", #{ url: "https://example.com/b.git", revision: "v1" }], commands: ["x"], accept: "false" } } };"#;
    let deps = builder_deps(input(source), "build", &Limits::default()).expect("deps");
    let names: Vec<&str> = deps.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        builder_deps(input(source), "lib-build", &Limits::default()).map(|d| d.len()),
        Ok(2)
    );
    assert_eq!(
        builder_deps(input(source), "nope", &Limits::default()),
        Err("constructicon.rhai of lib defines no builder nope".to_string())
    );
}

#[test]
fn the_builtin_cybertron_has_one_local_worker() {
    let cybertron = default_cybertron();
    assert!(cybertron.builtin);
    assert_eq!(cybertron.spec.workers.keys().collect::<Vec<_>>(), ["local"]);
    assert_eq!(
        cybertron.spec.workers["local"]["platform"],
        std::env::consts::OS
    );
}

#[test]
fn the_config_hash_follows_the_text() {
    let cybertron = Arc::new(default_cybertron());
    let a = repo(
        "r",
        r#"constructicon = #{ builders: #{ a: #{ commands: ["x"] } } };"#,
        &cybertron,
    );
    let b = repo(
        "r",
        r#"constructicon = #{ builders: #{ a: #{ commands: ["x"] } } };"#,
        &cybertron,
    );
    let c = repo(
        "r",
        r#"constructicon = #{ builders: #{ a: #{ commands: ["y"] } } };"#,
        &cybertron,
    );
    let hash = |e: &Evaluation<Graph>| e.value.as_ref().expect("graph").config_hash.clone();
    assert_eq!(hash(&a), hash(&b));
    assert_ne!(hash(&a), hash(&c));
}

#[test]
fn the_horizon_is_a_count_or_a_policy() {
    let counted = cybertron("cybertron = #{ workers: #{ w: #{} }, horizon: 5 };");
    assert_eq!(
        (
            counted.spec.horizon,
            counted.spec.horizon_days,
            counted.spec.keep_last_success
        ),
        (5, None, false)
    );
    let policy = cybertron(
        "cybertron = #{ workers: #{ w: #{} }, horizon: #{ builds: 50, days: 30, keep_last_success: true } };",
    );
    assert_eq!(
        (
            policy.spec.horizon,
            policy.spec.horizon_days,
            policy.spec.keep_last_success
        ),
        (50, Some(30), true)
    );
}

#[test]
fn forges_take_a_host_or_an_api_and_repos() {
    let ok = cybertron(
        r#"cybertron = #{ workers: #{ w: #{} }, forges: #{
            "github.com": #{ type: "github", token: #{ env: "GITHUB_TOKEN" } },
            "gl.example.com": #{ type: "gitlab", token: #{ file: "/etc/t" }, concurrency: 2 },
            local: #{ type: "forgejo", api: "http://127.0.0.1:3000/api/v1/", repos: ["/srv/git/*"], token: #{ env: "T" } },
        } };"#,
    );
    let forges = &ok.spec.forges;
    assert_eq!(forges.len(), 3);
    let github = ok
        .spec
        .forge_for("https://github.com/acme/app.git")
        .expect("github");
    assert_eq!(github.api, "https://api.github.com");
    assert_eq!(github.concurrency, 4);
    let gitlab = ok
        .spec
        .forge_for("git@gl.example.com:group/app.git")
        .expect("gitlab");
    assert_eq!(gitlab.api, "https://gl.example.com/api/v4");
    assert_eq!(gitlab.concurrency, 2);
    let local = ok.spec.forge_for("/srv/git/acme/app").expect("local");
    assert_eq!(local.api, "http://127.0.0.1:3000/api/v1");
    assert!(ok.spec.forge_for("https://example.org/acme/app").is_none());

    let bad = evaluate_cybertron(
        "cybertron.rhai",
        br#"cybertron = #{ forges: #{
            "github.com": #{ type: "gitbucket", token: #{ env: "X" } },
            local: #{ type: "gitea", token: "abc" },
        } };"#
            .to_vec(),
        &Limits::default(),
    );
    let messages = messages(&bad).join("\n");
    assert!(
        messages.contains("unknown forge type \"gitbucket\""),
        "{messages}"
    );
    assert!(
        messages.contains("say where its API is (\"api\")"),
        "{messages}"
    );
    assert!(
        messages.contains("say which repos it hosts (\"repos\")"),
        "{messages}"
    );
    assert!(
        messages.contains("the token itself never goes in cybertron"),
        "{messages}"
    );
    assert!(
        !messages.contains("abc"),
        "the token is not echoed: {messages}"
    );
    assert!(
        !messages.contains("\"github.com\" is not a host"),
        "{messages}"
    );
}

#[test]
fn maintainers_secrets_say_where_and_whom() {
    let ok = cybertron(
        r#"cybertron = #{ workers: #{ w: #{} }, secrets: #{
            deploy_token: #{ env: "DEPLOY_TOKEN" },
            signing_key: #{ file: "/etc/ci/key", repos: ["app*"], builders: ["*-release"],
                branches: "^(main|release/.*)$", triggers: ["force", "pull_request"],
                fork_pull_requests: true, user_workers: true, as_file: true },
        } };"#,
    );
    let deploy = &ok.spec.secrets["deploy_token"];
    assert_eq!(deploy.source, SecretSource::Env("DEPLOY_TOKEN".into()));
    assert_eq!(deploy.triggers, secrets::DEFAULT_TRIGGERS.to_vec());
    assert!(!deploy.user_workers && !deploy.as_file && !deploy.fork_pull_requests);
    let signing = &ok.spec.secrets["signing_key"];
    assert_eq!(signing.repos, vec!["app*"]);
    assert_eq!(signing.branches.as_deref(), Some("^(main|release/.*)$"));
    assert!(signing.user_workers && signing.as_file && signing.fork_pull_requests);

    let bad = evaluate_cybertron(
        "cybertron.rhai",
        br#"cybertron = #{ secrets: #{
    plain: "hunter22",
    both: #{ env: "A", file: "/b" },
    filtered: #{ env: "A", branches: "(", triggers: ["merge"] },
    forks: #{ env: "A", fork_pull_requests: true },
    "bad-name": #{ env: "A" },
} };"#
            .to_vec(),
        &Limits::default(),
    );
    let messages = messages(&bad);
    let expected = [
        "cybertron.rhai:2:12: secrets.plain: expected #{ env: \"VARIABLE\" } or #{ file: \"/path\" }: the secret itself never goes in cybertron",
        "cybertron.rhai:3:5: secrets.both: expected #{ env: \"VARIABLE\" } or #{ file: \"/path\" }: the secret itself never goes in cybertron",
        "cybertron.rhai:4:38: secrets.filtered.branches: invalid regex \"(\": unclosed group",
        "cybertron.rhai:4:54: secrets.filtered.triggers[0]: unknown trigger \"merge\": expected \"force\", \"time\", \"commit\", \"push\" or \"pull_request\"",
        "cybertron.rhai:5:25: secrets.forks.fork_pull_requests: fork_pull_requests needs \"pull_request\" in the secret's triggers",
        "cybertron.rhai:6:5: secrets.bad-name: secret name \"bad-name\" cannot be an environment variable: use letters, digits and _, not starting with a digit",
    ];
    assert_eq!(messages, expected, "{messages:#?}");
    assert!(!messages.join("\n").contains("hunter22"), "never echoed");
}

#[test]
fn builders_name_secrets_that_exist() {
    let cybertron = cybertron(
        r#"cybertron = #{ workers: #{ w: #{} }, secrets: #{ deploy_token: #{ env: "DEPLOY_TOKEN" } } };"#,
    );
    let identity = age::x25519::Identity::generate();
    let ciphertext = age::encrypt_and_armor(&identity.to_public(), b"hunter22").unwrap();
    let good = repo(
        "app",
        &format!(
            "constructicon = #{{ secrets: #{{ token: `{ciphertext}` }}, builders: #{{ b: #{{ commands: [\"true\"], secrets: [\"deploy_token\", \"token\"] }} }} }};"
        ),
        &cybertron,
    );
    assert_eq!(good.errors, vec![]);
    let graph = good.value.expect("graph");
    assert_eq!(
        graph.builders["app-b"].secrets,
        vec!["deploy_token", "token"]
    );
    assert_eq!(graph.secrets["token"], ciphertext);

    let bad = repo(
        "app",
        r#"constructicon = #{
    secrets: #{ deploy_token: "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n", plain: "hunter22" },
    builders: #{ b: #{ commands: ["true"], secrets: ["deploy_tokn"] } },
};"#,
        &cybertron,
    );
    let messages = messages(&bad);
    let expected = [
        "constructicon.rhai:2:31: secrets.deploy_token: the encrypted secret is malformed: Incomplete header",
        "constructicon.rhai:2:118: secrets.plain: expected an encrypted secret starting with \"-----BEGIN AGE ENCRYPTED FILE-----\"; a secret's value never goes in a config",
        "constructicon.rhai:3:54: builders.b.secrets[0]: secret \"deploy_tokn\" is not declared",
    ];
    assert_eq!(messages, expected, "{messages:#?}");
}
