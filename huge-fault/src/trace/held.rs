//! The command `huge-fault run` starts, held before it execs until everything is attached.

use crate::error::{Error, Result};

/// A command started by `huge-fault run`, held before `exec` until tracing is attached.
pub struct Traced {
    pub child: std::process::Child,
    /// Writing a byte here lets the child exec.
    pub release: std::fs::File,
}

/// The first argument of huge-fault re-executed as the holder of a `run` command.
pub const HOLD_ARG: &str = "--internal-hold-then-exec";

/// The holder's side of [`spawn_held`]: waits until the tracer writes to descriptor 3, then
/// becomes the command. Returns only when the exec failed (status 127, as a shell would).
pub fn hold_then_exec(argv: &[std::ffi::OsString]) -> i32 {
    use std::os::unix::process::CommandExt as _;
    let mut b = [0u8; 1];
    // SAFETY: descriptor 3 is the pipe spawn_held gave us; read/close have no preconditions.
    unsafe {
        libc::read(3, b.as_mut_ptr().cast(), 1);
        libc::close(3);
    }
    let Some((cmd, args)) = argv.split_first() else {
        return 127;
    };
    let err = std::process::Command::new(cmd).args(args).exec();
    eprintln!("huge-fault: cannot run {}: {err}", cmd.to_string_lossy());
    127
}

pub fn spawn_held(argv: &[String]) -> Result<Traced> {
    use std::os::unix::process::CommandExt as _;
    let mut fds = [0i32; 2];
    // SAFETY: pipe() fills the two descriptors we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("pipe", std::io::Error::last_os_error()));
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // std's spawn waits for the exec, so the hold cannot be in pre_exec: huge-fault itself
    // (no shell needed) waits on descriptor 3 instead, then execs the command (same pid).
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(HOLD_ARG);
    cmd.args(argv);
    // SAFETY: dup2(2) is async-signal-safe; it gives the child the read end as fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(read_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        command: argv[0].clone(),
        source,
    })?;
    // SAFETY: both descriptors are ours; the write end is owned by the File from here on.
    let release = unsafe {
        libc::close(read_fd);
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(write_fd)
    };
    Ok(Traced { child, release })
}
