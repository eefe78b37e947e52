//! The tool's errors: one type with a variant per thing that can go wrong, each printed as
//! one line (with its causes) by `main`, which then exits 2.

use std::path::PathBuf;

use crate::{
    kernel::Mode,
    record::{CreateError, ReadError},
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("must run as root (or with CAP_BPF and CAP_PERFMON) to load eBPF programs: try sudo")]
    NotRoot,
    #[error("this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild it")]
    NoEbpfObject,
    #[error(
        "no BTF at {}: the kernel was built without CONFIG_DEBUG_INFO_BTF; pass --btf FILE",
        .0.display()
    )]
    NoBtf(PathBuf),
    #[error("cannot read BTF {}", path.display())]
    BtfUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("BTF {} is not usable: {why}", path.display())]
    BtfUnusable { path: PathBuf, why: String },
    #[error("BTF {} lacks a structure huge-fault reads: {member}: {why}", path.display())]
    MissingMember {
        path: PathBuf,
        member: String,
        why: String,
    },
    #[error("cannot load the eBPF object: {0}")]
    ObjectLoad(String),
    #[error("{} mode unavailable: {reason}", mode.name())]
    ModeUnavailable { mode: Mode, reason: String },
    /// Every mode tried failed: each with its first real failure.
    #[error("no attach mode works on this kernel: {}", reasons_text(.0))]
    NoMode(Vec<(Mode, String)>),
    #[error(
        "no function matches --huge-fault-handler {0} in /proc/kallsyms (is its module loaded?)"
    )]
    NoHandler(String),
    #[error("tracefs is not mounted and mounting it on /sys/kernel/tracing failed")]
    TracefsMount(#[source] std::io::Error),
    #[error("cgroup {}", path.display())]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a cgroup v2 directory", .0.display())]
    NotCgroup(PathBuf),
    #[error("no process with pid {0}")]
    NoProcess(u32),
    #[error("cannot follow forks: {0}")]
    FollowForks(String),
    #[error(
        "--bpf-stats: the kernel refused to account BPF run time (BPF_ENABLE_STATS, 5.8+): {0}"
    )]
    BpfStats(std::io::Error),
    #[error("cannot run {command}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    /// A map or program of our own object that the loader could not use.
    #[error("{what}: {why}")]
    Object { what: &'static str, why: String },
    #[error("{what}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot record to {}", path.display())]
    RecordCreate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recording to {} failed", path.display())]
    RecordWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    RecordOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A recording damaged at some byte: what came before it was reported.
    #[error("{}: {error}; reported the {records} records before it", path.display())]
    RecordDamaged {
        path: PathBuf,
        error: ReadError,
        records: u64,
    },
    #[error("cannot write the JUnit report {}", path.display())]
    Junit {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Kallsyms {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} lists no text symbols", .0.display())]
    NoSymbols(PathBuf),
    #[error("no kernel function matches `{pattern}` in {}", path.display())]
    NoSymbolMatch { pattern: String, path: PathBuf },
    /// Stdout was closed (a pipe into `head`): the run ends quietly, status 141.
    #[error("stdout closed")]
    BrokenPipe,
    #[error("{command}: command not found")]
    CommandNotFound { command: String },
    #[error("{command}: cannot run it")]
    CommandNotExecutable {
        command: String,
        source: std::io::Error,
    },
    #[error("{} exists: pass --force to replace it", .0.display())]
    RecordExists(PathBuf),
    #[error("{} is a symbolic link: a recording is never written through one", .0.display())]
    RecordSymlink(PathBuf),
    #[error(
        "{} exists, left by a run that did not finish: report it, then remove it",
        .0.display()
    )]
    PartialExists(PathBuf),
    /// A file that is not a recording at all (nothing of it is reported).
    #[error("{path}: {error}", path = .0.display(), error = .1)]
    NotRecording(PathBuf, ReadError),
    #[error("cannot serve metrics on {addr}")]
    MetricsBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

fn reasons_text(reasons: &[(Mode, String)]) -> String {
    reasons
        .iter()
        .map(|(m, w)| format!("{}: {w}", m.name()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The exit status this error ends the tool with: 141 (128 + SIGPIPE) for a closed
    /// stdout, 127 and 126 for a command that cannot be run (as a shell says), else 2.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BrokenPipe => 141,
            Error::CommandNotFound { .. } => 127,
            Error::CommandNotExecutable { .. } => 126,
            _ => 2,
        }
    }

    /// An I/O failure of something the tool needs, with what it was doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A recording that could not be started or published as `path`.
    pub fn record(path: &std::path::Path, e: CreateError) -> Self {
        match e {
            CreateError::Exists => Error::RecordExists(path.into()),
            CreateError::Symlink => Error::RecordSymlink(path.into()),
            CreateError::Partial(p, e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::PartialExists(p)
            }
            CreateError::Partial(path, source) => Error::RecordCreate { path, source },
            CreateError::Io(source) => Error::RecordCreate {
                path: path.into(),
                source,
            },
        }
    }

    /// The error and its causes on one line: `what: cause: cause`.
    pub fn one_line(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            let more = e.to_string();
            // thiserror's transparent messages repeat their cause; say each once.
            if !s.ends_with(&more) {
                s.push_str(": ");
                s.push_str(&more);
            }
            src = e.source();
        }
        s.lines().next().unwrap_or_default().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_one_line_with_its_causes() {
        let e = Error::BtfUnreadable {
            path: "/x/btf".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            e.one_line(),
            "cannot read BTF /x/btf: Permission denied (os error 13)"
        );
        let e = Error::NoMode(vec![
            (Mode::Fentry, "fentry refused".into()),
            (Mode::Kprobe, "kprobes unavailable".into()),
        ]);
        assert_eq!(
            e.one_line(),
            "no attach mode works on this kernel: fentry: fentry refused; kprobe: kprobes unavailable"
        );
        assert_eq!(
            Error::ModeUnavailable {
                mode: Mode::Kprobe,
                reason: "no".into()
            }
            .one_line(),
            "kprobe mode unavailable: no"
        );
        let multi = Error::ObjectLoad("first\nsecond".into());
        assert_eq!(multi.one_line(), "cannot load the eBPF object: first");
    }
}
