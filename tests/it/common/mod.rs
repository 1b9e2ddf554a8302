//! Test helpers shared by the integration tests: a repo folder in a temp dir
//! ([`Repo`]), and [`run`], which runs the real `constructicon` binary and
//! measures what that one child process cost (wall time and peak RSS).
//!
//! Peak RSS is the child's own (see [`wait_with_usage`]), not
//! `getrusage(RUSAGE_CHILDREN)`, which would mix in every other child the
//! test binary has reaped (tests run in parallel threads of one process).

#![allow(dead_code)]

pub mod fake_forge;
pub mod system;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single run may take before the helper kills it, so that a
/// hanging binary fails a test instead of hanging the suite.
const KILL_AFTER: Duration = Duration::from_secs(30);

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Output {
    /// The exit code, or `None` when the child was killed by a signal.
    pub code: Option<i32>,
    /// The signal that killed the child, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Peak resident set size of the child, in KiB.
    pub peak_rss_kb: u64,
}

impl Output {
    /// The stdout parsed as JSON; panics with the whole output when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `constructicon ARGS` in `cwd` and waits for it.
pub fn run<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Output {
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_constructicon"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("CONSTRUCTICON_MEGATRON")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and makes one
    // async-signal-safe system call. If tracing is refused the child runs
    // untraced and `wait_with_usage` falls back on sampling.
    unsafe {
        command.pre_exec(|| {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawn constructicon");
    let pid = child.id() as libc::pid_t;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr piped")));

    let (status, peak_rss_kb) = wait_with_usage(pid, started + KILL_AFTER);
    let wall = started.elapsed();
    // The child is reaped: `Child`'s drop neither waits nor kills, so dropping
    // it here is fine.
    drop(child);
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Output {
        code,
        signal,
        stdout,
        stderr,
        wall,
        peak_rss_kb,
    }
}

/// The child's memory high-water mark (`VmHWM`, KiB) while it still has its
/// memory, or 0.
fn high_water_kb(pid: libc::pid_t) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reaps `pid` with `wait4` and returns its wait status and its peak RSS in
/// KiB, killing it first if it outlives `deadline`. Until it is reaped the pid
/// cannot be reused, so the kill cannot hit another process.
///
/// Why not `wait4`'s `ru_maxrss`: on exec, Linux folds the high-water mark of
/// the memory the process had before exec into `ru_maxrss`, and `Command`
/// spawns with vfork semantics (or fork), so that memory is this test
/// process's: every child would report at least the test binary's own peak.
/// Instead the child is traced (`PTRACE_TRACEME`) with `PTRACE_O_TRACEEXIT`,
/// which stops it on its way out while its memory still exists, and its
/// `VmHWM` (the peak of its post-exec memory only) is read there. The same
/// figure is also sampled every millisecond, which is what remains if the
/// kernel refuses tracing.
fn wait_with_usage(pid: libc::pid_t, deadline: Instant) -> (libc::c_int, u64) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    let mut peak = 0;
    let mut traced = false;
    loop {
        // SAFETY: pid is our own unreaped child; status and usage are valid
        // pointers for the duration of the call.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == -1 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            panic!("wait4({pid}) failed: {error}");
        }
        if reaped == pid && libc::WIFSTOPPED(status) {
            let exit_event = libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8);
            let deliver = if !traced {
                // The stop after exec: from now on, stop again on exit.
                traced = true;
                let options = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
                // SAFETY: pid is our stopped tracee.
                unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) };
                0
            } else if status >> 8 == exit_event {
                peak = peak.max(high_water_kb(pid));
                0
            } else {
                // A signal meant for the child: pass it on.
                libc::WSTOPSIG(status)
            };
            // SAFETY: pid is our stopped tracee.
            unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, deliver) };
            continue;
        }
        if reaped == pid {
            return (status, peak);
        }
        peak = peak.max(high_water_kb(pid));
        if Instant::now() > deadline && !killed {
            // SAFETY: see above; the child is still ours and unreaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A repo folder named `name` inside a fresh temp dir, so the binary derives
/// the repo name from it. Files outside the repo (a cybertron, a file a
/// hostile import reaches for) go into the temp dir beside it.
pub struct Repo {
    // Held for its drop, which removes the folder.
    temp: tempfile::TempDir,
    name: String,
}

impl Repo {
    pub fn new(name: &str) -> Repo {
        let temp = tempfile::Builder::new()
            .prefix("constructicon-it-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(temp.path().join(name)).expect("repo folder");
        Repo {
            temp,
            name: name.to_string(),
        }
    }

    /// A repo named `hello` with this `constructicon.rhai`.
    pub fn with_config(script: impl AsRef<[u8]>) -> Repo {
        let repo = Repo::new("hello");
        repo.config(script);
        repo
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The temp dir holding the repo folder; commands run from here.
    pub fn parent(&self) -> &Path {
        self.temp.path()
    }

    /// The repo folder.
    pub fn path(&self) -> PathBuf {
        self.temp.path().join(&self.name)
    }

    /// Writes `constructicon.rhai`.
    pub fn config(&self, script: impl AsRef<[u8]>) -> &Repo {
        self.file("constructicon.rhai", script)
    }

    /// Writes a file inside the repo, creating its folders.
    pub fn file(&self, relative: &str, contents: impl AsRef<[u8]>) -> &Repo {
        write(&self.path().join(relative), contents.as_ref());
        self
    }

    /// Writes a file beside the repo (in the temp dir) and returns its path.
    pub fn outside(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.parent().join(relative);
        write(&path, contents.as_ref());
        path
    }

    /// Runs `constructicon eval <name> ARGS` from the parent folder, so
    /// diagnostics name the script `<name>/constructicon.rhai`.
    pub fn eval(&self, args: &[&str]) -> Output {
        let mut all = vec!["eval", self.name.as_str()];
        all.extend_from_slice(args);
        run(self.parent(), &all)
    }

    /// `eval --json` with a cybertron text written beside the repo.
    pub fn eval_json_with(&self, cybertron: Option<&str>) -> Output {
        match cybertron {
            Some(text) => {
                self.outside("cybertron.rhai", text);
                self.eval(&["--json", "--cybertron", "cybertron.rhai"])
            }
            None => self.eval(&["--json"]),
        }
    }
}

fn write(path: &Path, contents: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create folders");
    }
    std::fs::write(path, contents).expect("write file");
}
