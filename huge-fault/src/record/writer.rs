//! Writing a recording as the run goes, and the VMA resolver that records its answers.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use huge_fault_common::{AggKey, FaultRecord};
use serde::Serialize;

use super::{Answer, MAGIC, Trailer};
use crate::vma::{VmaDesc, VmaResolver};

/// Writes a recording as the run goes: into `FILE.partial` (mode 0600, created anew,
/// never through a symbolic link), readable up to its last flushed entry if the tracer
/// dies, and renamed to FILE when the run ends.
pub struct Recorder {
    w: std::io::BufWriter<std::fs::File>,
    /// Where the recording is published at the end.
    pub path: PathBuf,
    partial: PathBuf,
    force: bool,
    /// The first write error; recording stops there and the run reports it.
    pub error: Option<std::io::Error>,
}

/// Why a recording could not be started or published.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("exists")]
    Exists,
    #[error("is a symbolic link")]
    Symlink,
    #[error("{}", .0.display())]
    Partial(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// FILE with `.partial` appended to its name.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Refuses a FILE that is a symbolic link, and one that exists unless `force`.
fn check_target(path: &Path, force: bool) -> Result<(), CreateError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(CreateError::Symlink),
        Ok(m) if m.is_dir() => Err(std::io::Error::from(std::io::ErrorKind::IsADirectory).into()),
        Ok(_) if !force => Err(CreateError::Exists),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl Recorder {
    /// Starts a recording to be published as `path`; an existing `path` is an error unless
    /// `force`, and a symbolic link always is.
    pub fn create(path: &Path, force: bool) -> Result<Self, CreateError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        check_target(path, force)?;
        let partial = partial_path(path);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&partial)
            .map_err(|e| CreateError::Partial(partial.clone(), e))?;
        let mut r = Recorder {
            w: std::io::BufWriter::new(f),
            path: path.into(),
            partial,
            force,
            error: None,
        };
        r.write(MAGIC);
        Ok(r)
    }

    /// Hands what was written so far to the file, so that a tracer that dies leaves a
    /// recording readable up to here.
    pub fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.w.flush()
        {
            self.error = Some(e);
        }
    }

    fn write(&mut self, b: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.w.write_all(b)
        {
            self.error = Some(e);
        }
    }

    pub(super) fn json(&mut self, tag: u8, v: &impl Serialize) {
        let body = serde_json::to_vec(v).expect("serializes");
        self.write(&[tag]);
        self.write(&(body.len() as u32).to_le_bytes());
        self.write(&body);
    }

    pub fn record(&mut self, r: &FaultRecord) {
        self.write(b"R");
        self.write(r.as_bytes());
    }

    /// `n` more faults of class `k`, counted in the kernel.
    pub fn aggregate(&mut self, k: &AggKey, n: u64) {
        self.write(b"A");
        self.write(k.as_bytes());
        self.write(&n.to_le_bytes());
    }

    /// Writes the trailer and publishes the recording as its file (never replacing one
    /// that appeared meanwhile unless `force`, never a symbolic link). On a write error the
    /// partial file stays, readable up to the error.
    pub fn finish(mut self, trailer: &Trailer) -> Result<(), CreateError> {
        self.json(b'E', trailer);
        self.flush();
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        if let Err(e) = self.w.get_ref().sync_all() {
            return Err(e.into());
        }
        check_target(&self.path, self.force)?;
        publish(&self.partial, &self.path, self.force)
    }
}

/// Renames `from` to `to`: with `renameat2(RENAME_NOREPLACE)` unless `force`, falling back
/// to link and unlink (the same no-replace guarantee) where the file system lacks it.
fn publish(from: &Path, to: &Path, force: bool) -> Result<(), CreateError> {
    if force {
        return std::fs::rename(from, to).map_err(Into::into);
    }
    use std::os::unix::ffi::OsStrExt as _;
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (cf, ct) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated strings alive for the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cf.as_ptr(),
            libc::AT_FDCWD,
            ct.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EEXIST) => Err(CreateError::Exists),
        Some(libc::EINVAL | libc::ENOSYS) => {
            std::fs::hard_link(from, to).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    CreateError::Exists
                } else {
                    e.into()
                }
            })?;
            std::fs::remove_file(from).map_err(Into::into)
        }
        _ => Err(e.into()),
    }
}

/// A resolver that writes every answer of the one it wraps into the recording.
pub struct Recording<'a> {
    pub inner: &'a mut dyn VmaResolver,
    pub rec: Option<&'a mut Recorder>,
}

impl Recording<'_> {
    fn remember(&mut self, tgid: u32, addr: u64, vma: &Option<VmaDesc>) {
        if let Some(r) = self.rec.as_deref_mut() {
            r.json(
                b'V',
                &Answer {
                    tgid,
                    addr,
                    vma: vma.clone(),
                },
            );
        }
    }
}

impl VmaResolver for Recording<'_> {
    fn lookup_fresh(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        let vma = self.inner.lookup_fresh(tgid, addr);
        self.remember(tgid, addr, &vma);
        vma
    }

    fn lookup(&mut self, tgid: u32, addr: u64) -> Option<VmaDesc> {
        let vma = self.inner.lookup(tgid, addr);
        self.remember(tgid, addr, &vma);
        vma
    }
}
