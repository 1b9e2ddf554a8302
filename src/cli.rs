//! The command line: clap types, one variant per command of DESIGN.md's table.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "constructicon",
    version,
    about = "A continuous-integration system whose build descriptions are sandboxed Rhai scripts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The default megatron address for commands that talk to one.
pub const DEFAULT_MEGATRON: &str = "http://127.0.0.1:9120";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: evaluate a repo's constructicon.rhai (merged with a cybertron)
    /// and print its builder graph; with --against, what it would change on
    /// a megatron. Exit 0 when valid, 1 on config errors, 2 on usage errors.
    Eval(EvalArgs),
    /// Run the megatron, the server.
    Megatron(MegatronArgs),
    /// Run a worker: claim builds from a megatron and run them.
    Worker(WorkerArgs),
    /// Ask the megatron to take a repo, or to fetch and reconfigure one.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Force a build of a builder.
    Force(ForceArgs),
    /// List the builders, with their last build.
    Builders(ListArgs),
    /// A builder's builds, newest first.
    Builds(BuildsArgs),
    /// One build: its state, steps, revisions and artifacts.
    Build(BuildArgs),
    /// A build's log: every step's, or one step's; `-f` follows it live.
    Log(LogArgs),
    /// Cancel a build: a queued one at once, a running one within a second.
    Cancel(BuildArgs),
    /// Build again with the same revision, deps' commits and parameters.
    Rebuild(BuildArgs),
    /// A repo's pull requests: their heads, builds, and why any waits.
    Pulls(PullsArgs),
    /// Approve a fork's pull request at its head commit, so it builds.
    Approve(ApproveArgs),
    /// The pending builds in order, and why each waits.
    Queue(ListArgs),
    /// The workers: online or when last seen, and what each runs.
    Workers(ListArgs),
    /// Disk used per repo and builder: builds kept, their logs and artifacts.
    Usage(ListArgs),
    /// Issue (or revoke) a worker's or a person's token (needs the
    /// megatron's admin token).
    Token(TokenArgs),
    /// Keep a personal token for this megatron, so later commands act as
    /// you (`CONSTRUCTICON_USER_TOKEN` overrides it).
    Login(LoginArgs),
    /// Forget the token kept for this megatron.
    Logout(LogoutArgs),
    /// Encrypt a secret for a repo's config: reads the value on stdin,
    /// prints the armoured ciphertext to put in the config's `secrets`.
    /// Only that megatron can open it, and only for that repo's builds.
    Encrypt(EncryptArgs),
    /// In a checkout of a repo: fetch a builder's deps and `get` results
    /// beside it, as a worker would (`.` for every builder of the repo).
    Get(GetArgs),
    /// One command, nothing to install: a megatron, a worker and the example
    /// repo, with one build forced.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A repo folder or a constructicon.rhai file.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The maintainers' cybertron.rhai; without it a built-in one with a single
    /// local worker is used.
    #[arg(long, value_name = "FILE")]
    pub cybertron: Option<PathBuf>,
    /// Print the graph and errors as JSON.
    #[arg(long)]
    pub json: bool,
    /// The repo's name (builders are named `<repo>-<builder>`); defaults to the
    /// repo folder's name.
    #[arg(long, value_name = "REPO")]
    pub name: Option<String>,
    /// Send the config (and the files it imports) to this megatron, which
    /// evaluates it as the repo's next config with its live cybertron and
    /// workers, stores nothing, and answers what would change: builders
    /// added, removed and changed, key by key. Needs the operator role on
    /// the repo.
    #[arg(long, value_name = "URL", conflicts_with_all = ["cybertron", "name"])]
    pub against: Option<String>,
    /// With --against: the megatron's repo to compare with; by default the
    /// one whose URL is this checkout's `origin` remote.
    #[arg(long, value_name = "NAME", requires = "against")]
    pub repo: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MegatronArgs {
    #[command(subcommand)]
    pub action: Option<MegatronAction>,
    /// The maintainers' cybertron.rhai.
    #[arg(long, value_name = "FILE")]
    pub cybertron: Option<PathBuf>,
    /// Where the store, the repo mirrors and the admin token live.
    #[arg(long, value_name = "DIR", default_value = "constructicon-data")]
    pub data: PathBuf,
    /// Address and port to listen on; default: cybertron's `listen`, else
    /// 127.0.0.1:9120. Port 0 picks a free port (printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Connections served at once; more get 503 (bounded by the process's
    /// file descriptor limit).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_connections: usize,
    /// A connection must send a request's headers within this long, and an
    /// idle one is closed after it.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// The most one build may upload, in MiB (unzipped archives included).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub max_artifact_mb: u64,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// Intervals, in milliseconds; the defaults suit production, tests shorten them.
#[derive(Debug, Args, Clone)]
pub struct TimingArgs {
    /// Longest a worker's claim long-poll is held.
    #[arg(long, value_name = "MS", default_value_t = 30_000, hide = true)]
    pub claim_wait_ms: u64,
    /// Length of a heartbeat long-poll.
    #[arg(long, value_name = "MS", default_value_t = 5_000, hide = true)]
    pub heartbeat_ms: u64,
    /// A running build's lease without heartbeat.
    #[arg(long, value_name = "MS", default_value_t = 30_000, hide = true)]
    pub lease_ms: u64,
    /// How often leases are checked.
    #[arg(long, value_name = "MS", default_value_t = 1_000, hide = true)]
    pub lease_check_ms: u64,
    /// How often aged builds are looked for.
    #[arg(long, value_name = "MS", default_value_t = 600_000, hide = true)]
    pub retention_check_ms: u64,
    /// How often the disk each repo's history takes is counted for pages.
    #[arg(long, value_name = "MS", default_value_t = 120_000, hide = true)]
    pub usage_check_ms: u64,
    /// Poll repos this often instead of cybertron's `poll_interval`.
    #[arg(long, value_name = "MS", hide = true)]
    pub poll_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct MegatronAddress {
    /// The megatron's URL.
    #[arg(long, value_name = "URL", env = "CONSTRUCTICON_MEGATRON", default_value = DEFAULT_MEGATRON)]
    pub megatron: String,
}

#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The repo whose builds get the secret (its name on the megatron).
    #[arg(long, value_name = "NAME")]
    pub repo: String,
    /// The megatron holding the repo's key; the same as --megatron, which
    /// it overrides.
    #[arg(long, value_name = "URL")]
    pub against: Option<String>,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub address: MegatronAddress,
    /// The worker's name, as cybertron (or the repo, for a user worker) declares it.
    #[arg(long)]
    pub name: String,
    /// The worker's token, as `constructicon token NAME` issued it.
    #[arg(long, env = "CONSTRUCTICON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token (instead of --token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where builds are checked out and run.
    #[arg(long, value_name = "DIR", default_value = "constructicon-worker")]
    pub workdir: PathBuf,
    /// Longest claim long-poll asked of the megatron, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, hide = true)]
    pub claim_wait_ms: u64,
    /// Between SIGTERM and SIGKILL when a step is stopped, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5_000, hide = true)]
    pub kill_grace_ms: u64,
    /// Disk a step's output may take (in <workdir>/spool/) while the
    /// megatron is unreachable, in MiB; beyond it the step waits.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub spool_mb: u64,
    /// Output held in memory while it waits to be sent, in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 64 * 1024, hide = true)]
    pub log_queue_kb: usize,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Take a repo (or re-take it: fetch and reconfigure). Exit 1 when its
    /// config has errors.
    Add {
        url: String,
        #[arg(long)]
        branch: Option<String>,
        #[command(flatten)]
        address: MegatronAddress,
    },
    /// Fetch a registered repo and reconfigure it.
    Refresh {
        name: String,
        #[command(flatten)]
        address: MegatronAddress,
    },
    /// The registered repos, with their commit and config state.
    List(ListArgs),
    /// Remove a repo: its queued builds are cancelled, its builders go.
    Remove {
        name: String,
        #[command(flatten)]
        address: MegatronAddress,
    },
}

/// A list command's flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the megatron's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct BuildsArgs {
    /// The builder's full name.
    pub builder: String,
    /// How many builds, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A build: its id, or `BUILDER#N`.
    pub build: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct PullsArgs {
    /// The repo's name.
    pub repo: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The repo's name.
    pub repo: String,
    /// The request's number.
    pub number: u64,
    /// Its head commit (7 hex digits or more): a newer push needs a new
    /// approval.
    pub commit: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// A build: its id, or `BUILDER#N`.
    pub build: String,
    /// One step: its number in the build (0 is the checkout) or its name
    /// (`"command 1"`); every step when left out.
    pub step: Option<String>,
    /// Follow: print output as it comes until the build (or step) ends.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct ForceArgs {
    /// The builder's full name, `<repo>-<builder>`.
    pub builder: String,
    /// A parameter of the builder's force scheduler.
    #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE")]
    pub parameters: Vec<String>,
    /// Build this revision (branch, tag or commit) of a repo (URL or name).
    #[arg(short = 'r', long = "revision", value_name = "URL=REV")]
    pub revisions: Vec<String>,
    /// Follow the build and exit with its result: 0 on success or warnings.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Subcommand)]
pub enum MegatronAction {
    /// Make a running megatron read its cybertron again and re-evaluate every
    /// repo (as SIGHUP does).
    Reload(ReloadArgs),
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The megatron's admin token file (in its data dir).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "constructicon-data/admin-token"
    )]
    pub admin_token_file: PathBuf,
    /// The admin token itself (instead of the file).
    #[arg(long, env = "CONSTRUCTICON_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("whose").required(true).args(["worker", "person"])))]
pub struct TokenArgs {
    /// The worker's name.
    pub worker: Option<String>,
    /// A person cybertron's `access.people` declares: issue a personal API
    /// token for them.
    #[arg(long, value_name = "NAME")]
    pub person: Option<String>,
    /// Revoke instead: the worker's token, or every token of the person.
    #[arg(long)]
    pub revoke: bool,
    /// The megatron's admin token file (in its data dir).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "constructicon-data/admin-token"
    )]
    pub admin_token_file: PathBuf,
    /// The admin token itself (instead of the file).
    #[arg(long, env = "CONSTRUCTICON_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The token (as `constructicon token --person` printed it); read from
    /// standard input when not given.
    #[arg(long, env = "CONSTRUCTICON_USER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub address: MegatronAddress,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its store, repo and worker folder.
    #[arg(long, value_name = "DIR", default_value = "constructicon-demo")]
    pub data: PathBuf,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9120")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The builder (full name, or as the repo's config names it), or `.` for
    /// every builder of the repo.
    pub builder: String,
    /// Change nothing: only report what differs from what a worker would have.
    #[arg(long)]
    pub keep: bool,
    /// Use this revision (branch, tag or commit) of a dep (URL or name).
    #[arg(short = 'r', long = "revision", value_name = "URL=REV")]
    pub revisions: Vec<String>,
    /// The checkout to work beside (default: the one the current folder is in).
    #[arg(long, value_name = "DIR")]
    pub repo_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub address: MegatronAddress,
}
