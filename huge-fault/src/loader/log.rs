//! The programs' own log records (aya-log): printed with `-v`, dropped otherwise.

/// Prints the programs' aya-log records with `-v`, drops them otherwise.
pub struct KernelLog {
    pub verbose: bool,
}

impl log::Log for KernelLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        self.verbose
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.verbose {
            crate::say!(
                "[kernel {}] {}",
                record.level().as_str().to_lowercase(),
                record.args()
            );
        }
    }
    fn flush(&self) {}
}

/// The boxed logger type the log reader uses.
pub struct KernelLogBox(pub Box<KernelLog>);

impl log::Log for KernelLogBox {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0.log(r)
    }
    fn flush(&self) {}
}
