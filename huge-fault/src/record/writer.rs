//! Writing a recording as the run goes, and the VMA resolver that records its answers.

use std::io::Write;

use huge_fault_common::{AggKey, FaultRecord};
use serde::Serialize;

use super::{Answer, MAGIC, Trailer};
use crate::vma::{VmaDesc, VmaResolver};

/// Writes a recording as the run goes.
pub struct Recorder {
    w: std::io::BufWriter<std::fs::File>,
    pub path: std::path::PathBuf,
    /// The first write error; recording stops there and the run reports it.
    pub error: Option<std::io::Error>,
}

impl Recorder {
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        let f = std::fs::File::create(path)?;
        let mut r = Recorder {
            w: std::io::BufWriter::new(f),
            path: path.into(),
            error: None,
        };
        r.write(MAGIC);
        Ok(r)
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

    /// Writes the trailer; the first write error of the whole recording, if any.
    pub fn finish(mut self, trailer: &Trailer) -> std::io::Result<()> {
        self.json(b'E', trailer);
        if self.error.is_none()
            && let Err(e) = self.w.flush()
        {
            self.error = Some(e);
        }
        self.error.map_or(Ok(()), Err)
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
