//! What a live run shows while it goes: the full-screen view (`-i` on a terminal), plain
//! interval blocks (`-i` to a pipe or file), NDJSON reports (`--json-stream`), or a
//! one-line progress on a terminal.

mod keys;
mod screen;

use std::time::Instant;

use huge_fault_common::counter;
use ratatui::crossterm::event::KeyEvent;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{
    analysis::{Analyzer, Rates},
    cli::TraceArgs,
    error::Result,
    report::Report,
    run_info::RunInfo,
    stdio,
};
use screen::Screen;

/// What the user asked for from the live view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// `q` or Ctrl-C in the full-screen view.
    Quit,
}

enum Mode {
    Screen(Box<Screen>),
    Blocks,
    Stream,
    Progress,
    Quiet,
}

/// The live view's state between ticks.
pub struct View {
    mode: Mode,
    last_tick: Instant,
    last_records: u64,
    rates: Rates,
}

impl View {
    pub fn new(args: &TraceArgs) -> Self {
        use std::io::IsTerminal as _;
        let mode = if args.json_stream {
            Mode::Stream
        } else if args.interval.is_some() && !args.output.json {
            if std::io::stdout().is_terminal() {
                // A terminal that cannot be put in raw mode gets the plain blocks.
                Screen::start().map_or(Mode::Blocks, |s| Mode::Screen(Box::new(s)))
            } else {
                Mode::Blocks
            }
        } else if std::io::stderr().is_terminal() {
            Mode::Progress
        } else {
            Mode::Quiet
        };
        View {
            mode,
            last_tick: Instant::now(),
            last_records: 0,
            rates: Rates::default(),
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
        let elapsed = self.last_tick.elapsed();
        self.last_tick = Instant::now();
        let records_per_s =
            (analyzer.records - self.last_records) as f64 / elapsed.as_secs_f64().max(1e-9);
        self.last_records = analyzer.records;
        self.rates.tick(analyzer, elapsed);
        match &mut self.mode {
            Mode::Stream => {
                let rep = Report::build(analyzer, run);
                stdio::out(&format!(
                    "{}\n",
                    serde_json::to_string(&rep).expect("a report serializes")
                ))?;
            }
            Mode::Screen(s) => {
                s.update(Report::build(analyzer, run), &self.rates, records_per_s);
                s.draw()?;
            }
            Mode::Blocks => {
                let drops = run.counter(counter::RINGBUF_DROPS);
                let rep = Report::build(analyzer, run);
                stdio::out(&format!(
                    "--- {:.0}s ---\nhuge-fault: {} mode, {:.0} faults/s, {records_per_s:.0} records/s, {drops} ring-buffer drops\n{}\n",
                    run.duration_s,
                    run.mode.name(),
                    self.rates.total,
                    rep.render(args.output.top, None, Some(&self.rates))
                ))?;
            }
            Mode::Progress => stdio::err(&format!(
                "\r\x1b[Ktracing ({} mode): {} faults, {} processes, {} VMAs{}",
                run.mode.name(),
                analyzer.totals.faults,
                analyzer.processes.len(),
                analyzer.vmas.len(),
                left.map_or_else(
                    || "; Ctrl-C to stop".to_string(),
                    |l| format!("; {l}s left")
                ),
            )),
            Mode::Quiet => {}
        }
        Ok(())
    }

    /// The full-screen view's key presses (taken once; `None` for the other views).
    pub fn take_keys(&mut self) -> Option<UnboundedReceiver<KeyEvent>> {
        match &mut self.mode {
            Mode::Screen(s) => s.take_keys(),
            _ => None,
        }
    }

    /// What a key press does to the full-screen view.
    pub fn on_key(&mut self, k: KeyEvent) -> Control {
        match &mut self.mode {
            Mode::Screen(s) => s.on_key(k),
            _ => Control::Continue,
        }
    }

    /// Ends the view: the terminal restored (full screen) or the progress line cleared.
    pub fn finish(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Quiet) {
            Mode::Screen(s) => s.stop(),
            Mode::Progress => stdio::err("\r\x1b[K"),
            _ => {}
        }
    }
}

/// The width the final report is fitted to: the terminal's when stdout is one, else none
/// (a pipe or a file gets every column at full width).
pub fn output_width() -> Option<usize> {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    ratatui::crossterm::terminal::size()
        .ok()
        .map(|(w, _)| usize::from(w))
        .filter(|&w| w > 0)
}
