//! The command `huge-fault run` starts, held before it execs until everything is attached.

use std::{
    ffi::{CString, OsStr, OsString},
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

/// A command started by `huge-fault run`, held before `exec` until tracing is attached.
pub struct Traced {
    pub child: std::process::Child,
    /// Writing a byte here lets the child exec.
    pub release: std::fs::File,
}

/// The first argument of huge-fault re-executed as the holder of a `run` command.
pub const HOLD_ARG: &str = "--internal-hold-then-exec";

/// Status of a holder whose tracer went away before releasing it (the command never ran).
const TRACER_GONE: i32 = 125;

/// Where `command` is, as `execvp` would find it: the path itself when it has a `/`, else
/// the first executable file of that name on `PATH`. Checked before anything is attached,
/// so that a command that cannot run fails at once (127 not found, 126 not executable).
pub fn resolve_command(command: &str) -> Result<PathBuf> {
    let executable = |p: &Path| -> std::result::Result<(), std::io::Error> {
        let meta = std::fs::metadata(p)?;
        if meta.is_dir() {
            return Err(std::io::ErrorKind::IsADirectory.into());
        }
        let c = CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: access(2) reads the NUL-terminated path only.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    let not_found = || Error::CommandNotFound {
        command: command.into(),
    };
    if command.is_empty() {
        return Err(not_found());
    }
    if command.contains('/') {
        let p = PathBuf::from(command);
        return match executable(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found()),
            Err(source) => Err(Error::CommandNotExecutable {
                command: command.into(),
                source,
            }),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut refused = None;
    for dir in std::env::split_paths(&path) {
        let p = dir.join(command);
        match executable(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => refused = refused.or(Some(e)),
        }
    }
    Err(match refused {
        Some(source) => Error::CommandNotExecutable {
            command: command.into(),
            source,
        },
        None => not_found(),
    })
}

/// The holder's side of [`spawn_held`]: `argv` is the resolved program, then the command
/// line as given. Everything exec needs is built first, so that between the release and
/// the exec the holder touches no new memory (its faults would count as the command's).
/// Returns only when it did not exec: 127 if the exec failed, 125 if the tracer went away.
pub fn hold_then_exec(argv: &[OsString]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        return 127;
    };
    let cstr = |s: &OsStr| CString::new(s.as_bytes()).ok();
    let Some(program_c) = cstr(program) else {
        return 127;
    };
    let Some(args_c) = args.iter().map(|a| cstr(a)).collect::<Option<Vec<_>>>() else {
        return 127;
    };
    let env_c: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = args_c.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|e| e.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let mut b = [0u8; 1];
    // Ready: from here to the exec nothing new is touched, so the tracer counts the pid's
    // faults from now on. Then wait for the release.
    // SAFETY: descriptors 3 and 4 are the pipes spawn_held gave us; write, read and close
    // have no preconditions.
    let n = unsafe {
        libc::write(4, b"r".as_ptr().cast(), 1);
        libc::close(4);
        let n = libc::read(3, b.as_mut_ptr().cast(), 1);
        libc::close(3);
        n
    };
    if n != 1 {
        crate::say!("huge-fault: the tracer ended before the command started; not running it");
        return TRACER_GONE;
    }
    // The Rust runtime ignores SIGPIPE, and an ignored signal stays ignored across exec:
    // the command gets the default, as from a shell.
    // SAFETY: setting a signal's disposition to the default has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: every pointer is to a NUL-terminated string alive here, and both arrays end
    // with a null pointer.
    unsafe { libc::execve(program_c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    let err = std::io::Error::last_os_error();
    crate::say!(
        "huge-fault: cannot run {}: {err}",
        args.first()
            .map_or_else(|| program.to_string_lossy(), |a| a.to_string_lossy())
    );
    127
}

/// A pipe's read and write ends, closed on exec.
fn pipe() -> Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2() fills the two descriptors we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("pipe", std::io::Error::last_os_error()));
    }
    Ok((fds[0], fds[1]))
}

/// Starts `argv` (its program resolved at `program`) held: a copy of huge-fault that says
/// when it is ready and then waits on a pipe, and execs the command (same pid) once the
/// tracer writes to it. Returns once the holder is ready.
pub fn spawn_held(program: &Path, argv: &[String]) -> Result<Traced> {
    use std::os::unix::process::CommandExt as _;
    let (read_fd, write_fd) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    // std's spawn waits for the exec, so the hold cannot be in pre_exec: huge-fault itself
    // (no shell needed) waits on descriptor 3 instead, then execs the command.
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(HOLD_ARG);
    cmd.arg(program);
    cmd.args(argv);
    // SAFETY: dup2(2) is async-signal-safe; it gives the child the release pipe's read end
    // as fd 3 and the ready pipe's write end as fd 4 (both without close-on-exec).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(read_fd, 3) < 0 || libc::dup2(ready_write, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        command: argv[0].clone(),
        source,
    })?;
    // SAFETY: the descriptors are ours; the release pipe's write end is owned by the File
    // from here on. The holder's ready byte (or EOF if it died) ends the read.
    let (release, ready) = unsafe {
        libc::close(read_fd);
        libc::close(ready_write);
        let mut b = [0u8; 1];
        let n = libc::read(ready_read, b.as_mut_ptr().cast(), 1);
        libc::close(ready_read);
        (
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(write_fd),
            n == 1,
        )
    };
    if !ready {
        return Err(Error::Spawn {
            command: argv[0].clone(),
            source: std::io::Error::other("its holder exited before it was ready"),
        });
    }
    Ok(Traced { child, release })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_resolve_like_a_shell() {
        assert!(resolve_command("sh").unwrap().ends_with("sh"));
        assert_eq!(
            resolve_command("/bin/sh").unwrap(),
            PathBuf::from("/bin/sh")
        );
        let e = resolve_command("no-such-command-hf").unwrap_err();
        assert_eq!(e.exit_code(), 127, "{e}");
        assert_eq!(e.one_line(), "no-such-command-hf: command not found");
        let e = resolve_command("/nonexistent/x").unwrap_err();
        assert_eq!(e.exit_code(), 127);
        let e = resolve_command("/").unwrap_err();
        assert_eq!(
            (e.exit_code(), e.one_line().as_str()),
            (126, "/: cannot run it: is a directory")
        );
        let dir = std::env::temp_dir().join(format!("hf-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "x").unwrap();
        let e = resolve_command(plain.to_str().unwrap()).unwrap_err();
        // Root may execute anything with one x bit; a file with none is refused even to it.
        assert_eq!(e.exit_code(), 126, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
