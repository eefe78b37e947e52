//! What a live run shows while it goes: interval tables (`-i`), NDJSON reports
//! (`--json-stream`), or a one-line progress on a terminal.

use std::{collections::HashMap, time::Instant};

use huge_fault_common::counter;

use crate::{
    analysis::Analyzer, cli::TraceArgs, error::Result, report::Report, run_info::RunInfo, stdio,
};

/// The live view's state between ticks.
pub struct View {
    last_tick: Instant,
    last_records: u64,
    /// Faults per process at the last tick, for FAULTS/S.
    last_counts: HashMap<u32, u64>,
    stdout_tty: bool,
    stderr_tty: bool,
}

impl View {
    pub fn new() -> Self {
        use std::io::IsTerminal as _;
        View {
            last_tick: Instant::now(),
            last_records: 0,
            last_counts: HashMap::new(),
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    /// One tick: `run` is the run so far (ended by `running`). A closed stdout is an error.
    pub fn tick(
        &mut self,
        args: &TraceArgs,
        analyzer: &Analyzer,
        run: &RunInfo,
        left: Option<u64>,
    ) -> Result<()> {
        let elapsed = self.last_tick.elapsed().as_secs_f64().max(1e-9);
        self.last_tick = Instant::now();
        let records_per_s = (analyzer.records - self.last_records) as f64 / elapsed;
        self.last_records = analyzer.records;
        if args.json_stream {
            let rep = Report::build(analyzer, run);
            stdio::out(&format!(
                "{}\n",
                serde_json::to_string(&rep).expect("a report serializes")
            ))?;
        } else if args.interval.is_some() && !args.output.json {
            let drops = run.counter(counter::RINGBUF_DROPS);
            let header = format!(
                "huge-fault: {} mode, {records_per_s:.0} records/s, {drops} ring-buffer drops\n",
                run.mode.name()
            );
            let rep = Report::build(analyzer, run);
            let rates = |pid: u32| {
                let now = analyzer.processes.get(&pid).map_or(0, |p| p.stats.faults);
                let before = self.last_counts.get(&pid).copied().unwrap_or(0);
                Some((now - before.min(now)) as f64 / elapsed)
            };
            let text = format!("{header}{}", rep.render(args.output.top, Some(&rates)));
            if self.stdout_tty {
                stdio::out(&format!("\x1b[H\x1b[2J{text}"))?;
            } else {
                stdio::out(&format!("--- {:.0}s ---\n{text}\n", run.duration_s))?;
            }
            self.last_counts = analyzer
                .processes
                .iter()
                .map(|(k, p)| (*k, p.stats.faults))
                .collect();
        } else if self.stderr_tty {
            stdio::err(&format!(
                "\r\x1b[Ktracing ({} mode): {} faults, {} processes, {} VMAs{}",
                run.mode.name(),
                analyzer.totals.faults,
                analyzer.processes.len(),
                analyzer.vmas.len(),
                left.map_or_else(
                    || "; Ctrl-C to stop".to_string(),
                    |l| format!("; {l}s left")
                ),
            ));
        }
        Ok(())
    }

    /// Clears the progress line, when one was drawn.
    pub fn finish(&self, args: &TraceArgs) {
        if self.stderr_tty && args.interval.is_none() && !args.json_stream {
            stdio::err("\r\x1b[K");
        }
    }
}
