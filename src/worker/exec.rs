//! Running one step: a shell command in its own process group, with its output
//! streamed as it comes and its time bounded.
//!
//! This is the only part of the worker that spawns processes, and it knows
//! nothing of HTTP: [`run_step`] hands output chunks to a callback while the
//! step runs and returns a [`StepOutcome`] at the end, so it is tested on its
//! own. Output is bytes, never assumed to be UTF-8; it is split on newlines
//! only to look for warning lines (`output`). The command comes with its
//! parameters already substituted (`command`).
//!
//! Every step runs in a process group of its own so that a kill reaches the
//! whole tree the shell started (compilers, test runners, their children),
//! and so that a background child left behind cannot keep the step alive.

use super::output::{LineSplitter, Warnings};
use crate::protocol::BuildResult;
use anyhow::Context;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the step loop wakes without output, to look at the clock, the
/// stop signal and the child. Bounds how late a cancel or a timeout acts.
const TICK: Duration = Duration::from_millis(20);

/// The loop's pace once output has ended and only the shell's exit is
/// awaited; short, since that is usually a matter of microseconds.
const EOF_TICK: Duration = Duration::from_millis(5);

/// How long, after the shell exited, to wait for the end of output before
/// the process group is killed: a background child may hold the pipe open.
const EOF_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The longest output may go on after the shell exited (a background child
/// still writing) before the group is killed.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(30);

/// Chunks of output read ahead of what the log took.
const OUTPUT_CHUNKS_AHEAD: usize = 8;

/// How long to wait for the end of output once everything in the group got
/// SIGKILL. Only a process that left the group (setsid) can hold the pipe
/// longer, and the step does not wait for it.
const EOF_AFTER_KILL: Duration = Duration::from_millis(200);

/// Everything needed to run one step, already resolved: the command with its
/// parameters substituted, compiled regexes, limits as durations.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Shell text, run as `/bin/sh -c COMMAND`.
    pub command: String,
    /// Added to the worker's own environment.
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Kill the step after this long without output; `None`: never.
    pub silence_timeout: Option<Duration>,
    /// Kill the step after this long in all; `None`: never.
    pub max_duration: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    pub warnings: Warnings,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub result: BuildResult,
    /// The shell's exit code, when it exited rather than died of a signal.
    pub exit_code: Option<i32>,
    /// Why the step ended other than by exiting on its own.
    pub reason: Option<String>,
    /// How many output lines were warnings.
    pub warning_lines: usize,
}

impl StepOutcome {
    fn exception(reason: String) -> StepOutcome {
        StepOutcome {
            result: BuildResult::Exception,
            exit_code: None,
            reason: Some(reason),
            warning_lines: 0,
        }
    }
}

/// Runs the step to its end, calling `on_output` with each piece of output
/// (stdout and stderr interleaved as the step wrote them) while it runs.
/// `stop` is polled every few milliseconds: once it answers true the step is
/// killed and ends `cancelled`.
pub fn run_step(
    spec: &StepSpec,
    stop: &dyn Fn() -> bool,
    mut on_output: impl FnMut(&[u8]),
) -> StepOutcome {
    let (reader, mut child) = match spawn(spec) {
        Ok(spawned) => spawned,
        Err(error) => return StepOutcome::exception(format!("{error:#}")),
    };
    let group = child.id() as libc::pid_t;
    // Bounded: when the output cannot be taken as fast as the step writes
    // it (the log waits for the megatron), the reader stops reading the
    // pipe, so the step waits instead of its output piling up or being cut.
    let (sender, receiver) = mpsc::sync_channel(OUTPUT_CHUNKS_AHEAD);
    spawn_reader(reader, sender);

    let started = Instant::now();
    let mut last_output = started;
    let mut lines = LineSplitter::default();
    let mut warning_lines = 0;
    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut eof = false;
    let mut kill: Option<Kill> = None;
    let mut wait_error: Option<String> = None;

    loop {
        // Once output has ended the channel is closed and would answer at
        // once, so only the clock paces the loop.
        let next = if eof {
            std::thread::sleep(EOF_TICK);
            Err(mpsc::RecvTimeoutError::Timeout)
        } else {
            receiver.recv_timeout(TICK)
        };
        match next {
            Ok(Output::Bytes(bytes)) => {
                on_output(&bytes);
                // After `on_output`, which may have waited for the log.
                last_output = Instant::now();
                lines.feed(&bytes, |line| {
                    if spec.warnings.is_warning(line) {
                        warning_lines += 1;
                    }
                });
            }
            Ok(Output::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if status.is_none() {
            match child.try_wait() {
                Ok(Some(exit)) => {
                    status = Some(exit);
                    exited_at = Some(Instant::now());
                }
                Ok(None) => {}
                Err(error) => {
                    // Cannot happen for a child we own; do not spin on it.
                    wait_error = Some(format!("waiting for the step: {error}"));
                    signal_group(group, libc::SIGKILL);
                    break;
                }
            }
        }
        // Done when both output and shell ended. Output closed while the
        // shell lives on (it closed its stdout) is waited out like any
        // step: the timeouts below still apply.
        if eof && status.is_some() {
            break;
        }
        let now = Instant::now();

        if let (Some(exited), false) = (exited_at, eof) {
            // The shell is gone but something it started holds the pipe.
            // Output still coming is taken to its end (what the shell wrote
            // before exiting may still be on its way); silence, or output
            // that goes on and on, ends it.
            let sigkill_sent = kill.as_ref().is_some_and(|k| k.sigkill_sent.is_some());
            let quiet = now.duration_since(last_output.max(exited));
            if !sigkill_sent && (quiet >= EOF_AFTER_EXIT || now >= exited + OUTPUT_AFTER_EXIT) {
                signal_group(group, libc::SIGKILL);
                let k = kill.get_or_insert_with(|| Kill::new(None, now));
                k.sigkill_sent = Some(now);
            }
            if let Some(sent) = kill.as_ref().and_then(|k| k.sigkill_sent) {
                if now.duration_since(last_output.max(sent)) >= EOF_AFTER_KILL {
                    break;
                }
            }
            continue;
        }

        if kill.is_none() {
            let reason = if stop() {
                Some(KillReason::Stopped)
            } else if spec
                .silence_timeout
                .is_some_and(|limit| now >= last_output + limit)
            {
                Some(KillReason::Timeout(format!(
                    "no output for {}: killed",
                    human(spec.silence_timeout.unwrap_or_default())
                )))
            } else if spec
                .max_duration
                .is_some_and(|limit| now >= started + limit)
            {
                Some(KillReason::Timeout(format!(
                    "ran longer than {} in all: killed",
                    human(spec.max_duration.unwrap_or_default())
                )))
            } else {
                None
            };
            if let Some(reason) = reason {
                signal_group(group, libc::SIGTERM);
                kill = Some(Kill::new(Some(reason), now));
            }
        } else if let Some(k) = kill.as_mut() {
            if k.sigkill_sent.is_none() && now >= k.sigterm_sent + spec.kill_grace {
                signal_group(group, libc::SIGKILL);
                k.sigkill_sent = Some(now);
            }
        }
    }

    lines.finish(|line| {
        if spec.warnings.is_warning(line) {
            warning_lines += 1;
        }
    });
    // Whatever is left in the group (a background child that outlived the
    // shell and did not hold the pipe) must not outlive the step.
    signal_group(group, libc::SIGKILL);
    if status.is_none() {
        // Reap the shell; it got SIGKILL above if nothing else.
        status = child.wait().ok();
    }

    if let Some(error) = wait_error {
        return StepOutcome::exception(error);
    }
    let exit_code = status.and_then(|s| s.code());
    let reason_of_kill = kill.and_then(|k| k.reason);
    let (result, reason) = match reason_of_kill {
        Some(KillReason::Stopped) => (BuildResult::Cancelled, Some("cancelled".to_string())),
        Some(KillReason::Timeout(reason)) => (BuildResult::Failure, Some(reason)),
        None => match (exit_code, status.and_then(|s| s.signal())) {
            (Some(0), _) if warning_lines > 0 => (BuildResult::Warnings, None),
            (Some(0), _) => (BuildResult::Success, None),
            (Some(_), _) => (BuildResult::Failure, None),
            (None, Some(signal)) => (
                BuildResult::Failure,
                Some(format!("killed by signal {signal}")),
            ),
            (None, None) => (
                BuildResult::Failure,
                Some("ended without an exit status".to_string()),
            ),
        },
    };
    StepOutcome {
        result,
        exit_code,
        reason,
        warning_lines,
    }
}

enum Output {
    Bytes(Vec<u8>),
    Eof,
}

enum KillReason {
    /// The caller asked: cancel, lost lease, worker shutdown.
    Stopped,
    Timeout(String),
}

struct Kill {
    /// `None` when the kill only cleans up after a shell that already exited.
    reason: Option<KillReason>,
    sigterm_sent: Instant,
    sigkill_sent: Option<Instant>,
}

impl Kill {
    fn new(reason: Option<KillReason>, now: Instant) -> Kill {
        Kill {
            reason,
            sigterm_sent: now,
            sigkill_sent: None,
        }
    }
}

/// Starts the shell with stdout and stderr on one pipe; returns the pipe's
/// reading end.
fn spawn(spec: &StepSpec) -> anyhow::Result<(File, Child)> {
    let (reader, writer) = pipe().context("creating the output pipe")?;
    let child = {
        // The Command holds copies of the writing end; it must be dropped
        // right after the spawn, or the pipe never reports its end.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.cwd)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().context("duplicating the output pipe")?)
            .stderr(writer)
            .process_group(0);
        command
            .spawn()
            .with_context(|| format!("starting /bin/sh in {}", spec.cwd.display()))?
    };
    Ok((reader, child))
}

/// A close-on-exec pipe. `std::io::pipe` would do, but needs Rust 1.87 and
/// the crate promises 1.80.
fn pipe() -> std::io::Result<(File, File)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(read), File::from(write)))
}

/// Reads the pipe on a thread of its own, so the step loop can watch the
/// clock while no output comes. The thread ends at end of output, or when
/// the step loop stopped listening.
fn spawn_reader(mut reader: File, sender: mpsc::SyncSender<Output>) {
    std::thread::Builder::new()
        .name("step-output".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        if sender.send(Output::Bytes(buffer[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = sender.send(Output::Eof);
        })
        .map(drop)
        // Without a reader the step still ends: its loop sees the channel
        // closed as end of output and the timeouts still apply.
        .unwrap_or_else(|error| tracing::warn!("cannot start the output reader: {error}"));
}

/// Sends `signal` to every process of the step's group. The group outlives
/// its leader while any member lives, and its id is not reused meanwhile,
/// so this never reaches an unrelated process.
fn signal_group(group: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a group that is
    // already gone gives ESRCH, which is what we want to ignore.
    unsafe {
        libc::kill(-group, signal);
    }
}

fn human(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::command::substitute;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn spec(dir: &std::path::Path, command: &str) -> StepSpec {
        StepSpec {
            command: command.to_string(),
            env: BTreeMap::new(),
            cwd: dir.to_path_buf(),
            silence_timeout: Some(Duration::from_secs(10)),
            max_duration: Some(Duration::from_secs(20)),
            kill_grace: Duration::from_millis(200),
            warnings: Warnings::default(),
        }
    }

    fn run(spec: &StepSpec) -> (StepOutcome, Vec<u8>) {
        let mut output = Vec::new();
        let outcome = run_step(spec, &|| false, |bytes| output.extend_from_slice(bytes));
        (outcome, output)
    }

    #[test]
    fn hostile_values_reach_the_command_literally() {
        let dir = tempfile::tempdir().unwrap();
        let value = r#"a'b "c" $(touch pwned) `touch pwned2` ; touch pwned3"#;
        let parameters = BTreeMap::from([("p".to_string(), value.to_string())]);
        let step = spec(dir.path(), &substitute("printf '%s' {p}", &parameters));
        let (outcome, output) = run(&step);
        assert_eq!(outcome.result, BuildResult::Success, "{outcome:?}");
        assert_eq!(String::from_utf8_lossy(&output), value);
        for name in ["pwned", "pwned2", "pwned3"] {
            assert!(!dir.path().join(name).exists(), "{name} was created");
        }
    }

    #[test]
    fn environment_reaches_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut step = spec(dir.path(), r#"printf '%s|%s' "$GREETING" "$PWD""#);
        step.env.insert("GREETING".into(), "hello world".into());
        let (outcome, output) = run(&step);
        assert_eq!(outcome.result, BuildResult::Success);
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output),
            format!("hello world|{}", cwd.display())
        );
    }

    #[test]
    fn warnings_and_their_suppression() {
        let dir = tempfile::tempdir().unwrap();
        let mut step = spec(
            dir.path(),
            "echo 'warning: unused'; echo 'warning: known, ignore me'; printf 'no newline warning: x'",
        );
        step.warnings = Warnings::new(&[".*warning[: ]".into()], &["ignore me".into()]).unwrap();
        let (outcome, _) = run(&step);
        assert_eq!(outcome.result, BuildResult::Warnings);
        assert_eq!(outcome.warning_lines, 2);

        step.warnings = Warnings::new(&[".*warning[: ]".into()], &["warning".into()]).unwrap();
        let (outcome, _) = run(&step);
        assert_eq!(outcome.result, BuildResult::Success);
        assert_eq!(outcome.warning_lines, 0);

        // Invalid UTF-8 around a warning does not hide it.
        step.command = r"printf '\377\376 warning: bytes\n'".into();
        step.warnings = Warnings::new(&["warning: ".into()], &[]).unwrap();
        let (outcome, output) = run(&step);
        assert_eq!(outcome.result, BuildResult::Warnings);
        assert_eq!(&output[..2], b"\xff\xfe");

        assert!(Warnings::new(&["(".into()], &[]).is_err());
    }

    #[test]
    fn a_non_zero_exit_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (outcome, output) = run(&spec(dir.path(), "echo out; echo err >&2; exit 3"));
        assert_eq!(outcome.result, BuildResult::Failure);
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.reason, None);
        assert_eq!(String::from_utf8_lossy(&output), "out\nerr\n");
    }

    #[test]
    fn a_missing_folder_is_an_exception() {
        let dir = tempfile::tempdir().unwrap();
        let (outcome, _) = run(&spec(&dir.path().join("absent"), "true"));
        assert_eq!(outcome.result, BuildResult::Exception);
        assert!(outcome.reason.unwrap().contains("starting /bin/sh"));
    }

    #[test]
    fn a_silent_step_that_ignores_sigterm_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut step = spec(
            dir.path(),
            "trap '' TERM; echo started; sleep 30; echo never",
        );
        step.silence_timeout = Some(Duration::from_secs(1));
        let begun = Instant::now();
        let (outcome, output) = run(&step);
        let took = begun.elapsed();
        assert_eq!(outcome.result, BuildResult::Failure);
        assert_eq!(outcome.reason.as_deref(), Some("no output for 1 s: killed"));
        assert_eq!(String::from_utf8_lossy(&output), "started\n");
        assert!(took >= Duration::from_millis(1200), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn the_overall_limit_kills_a_chatty_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut step = spec(dir.path(), "while true; do echo tick; sleep 0.05; done");
        step.max_duration = Some(Duration::from_millis(300));
        let begun = Instant::now();
        let (outcome, _) = run(&step);
        assert_eq!(outcome.result, BuildResult::Failure);
        assert_eq!(
            outcome.reason.as_deref(),
            Some("ran longer than 0.3 s in all: killed")
        );
        assert!(begun.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_background_child_holding_the_pipe_does_not_hang_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let begun = Instant::now();
        let (outcome, output) = run(&spec(dir.path(), "sleep 30 & echo done"));
        assert_eq!(outcome.result, BuildResult::Success, "{outcome:?}");
        assert_eq!(String::from_utf8_lossy(&output), "done\n");
        assert!(
            begun.elapsed() < Duration::from_secs(2),
            "{:?}",
            begun.elapsed()
        );
    }

    #[test]
    fn stop_kills_a_running_step_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
                Instant::now()
            })
        };
        let outcome = run_step(
            &spec(dir.path(), "sleep 30"),
            &|| stop.load(Ordering::SeqCst),
            |_| {},
        );
        let asked = setter.join().unwrap();
        assert_eq!(outcome.result, BuildResult::Cancelled);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }

    #[test]
    fn output_arrives_while_the_step_runs() {
        let dir = tempfile::tempdir().unwrap();
        let begun = Instant::now();
        let mut first: Option<Duration> = None;
        let outcome = run_step(
            &spec(dir.path(), "echo first; sleep 0.5; echo second"),
            &|| false,
            |_| {
                first.get_or_insert(begun.elapsed());
            },
        );
        let total = begun.elapsed();
        assert_eq!(outcome.result, BuildResult::Success);
        let first = first.expect("some output");
        assert!(
            first + Duration::from_millis(300) < total,
            "{first:?} of {total:?}"
        );
    }
}
