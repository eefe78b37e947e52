//! The full-screen live view (`-i` on a terminal): a header with the mode, rates, losses
//! and the size mix, then the processes, the VMAs or their chains, sorted by faults in the
//! last interval unless a key says otherwise. Columns fit the terminal's width (see
//! `report::table`); nothing wraps. The terminal is restored when the view stops, and on a
//! panic (ratatui's hook).

use ratatui::{
    DefaultTerminal,
    crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
};

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Control, keys::Keys};
use crate::{
    analysis::Rates,
    error::{Error, Result},
    report::{
        ProcessReport, Report, VmaReport, fmt_size,
        table::{Shrink, shorten},
        tables,
    },
};

/// What the table shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Processes,
    Vmas,
    Chains,
}

/// The order of the rows, largest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Faults per second in the last interval.
    Rate,
    Fallback,
    P99,
    Bytes,
}

impl Sort {
    fn name(self) -> &'static str {
        match self {
            Sort::Rate => "faults/s",
            Sort::Fallback => "fallback",
            Sort::P99 => "p99",
            Sort::Bytes => "bytes",
        }
    }

    fn next(self) -> Sort {
        match self {
            Sort::Rate => Sort::Fallback,
            Sort::Fallback => Sort::P99,
            Sort::P99 => Sort::Bytes,
            Sort::Bytes => Sort::Rate,
        }
    }
}

/// The view's state apart from the terminal: what the keys changed, and what it shows.
pub struct State {
    pub tab: Tab,
    pub sort: Sort,
    pub paused: bool,
    report: Option<Report>,
    rates: Rates,
    records_per_s: f64,
}

impl Default for State {
    fn default() -> Self {
        State {
            tab: Tab::Vmas,
            sort: Sort::Rate,
            paused: false,
            report: None,
            rates: Rates::default(),
            records_per_s: 0.0,
        }
    }
}

/// What a key does.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Redraw,
    Quit,
    Nothing,
}

impl State {
    pub fn key(&mut self, k: KeyEvent) -> Action {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('c') if ctrl => Action::Quit,
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Char('p') => self.set_tab(Tab::Processes),
            KeyCode::Char('v') => self.set_tab(Tab::Vmas),
            KeyCode::Char('c') => self.set_tab(Tab::Chains),
            KeyCode::Tab => self.set_tab(match self.tab {
                Tab::Processes => Tab::Vmas,
                Tab::Vmas => Tab::Chains,
                Tab::Chains => Tab::Processes,
            }),
            KeyCode::Char('s') => self.set_sort(self.sort.next()),
            KeyCode::Char('r') => self.set_sort(Sort::Rate),
            KeyCode::Char('f') => self.set_sort(Sort::Fallback),
            KeyCode::Char('l') => self.set_sort(Sort::P99),
            KeyCode::Char('b') => self.set_sort(Sort::Bytes),
            KeyCode::Char(' ') => {
                self.paused = !self.paused;
                Action::Redraw
            }
            _ => Action::Nothing,
        }
    }

    fn set_tab(&mut self, t: Tab) -> Action {
        self.tab = t;
        Action::Redraw
    }

    fn set_sort(&mut self, s: Sort) -> Action {
        self.sort = s;
        Action::Redraw
    }

    /// A new interval's report, unless paused.
    pub fn update(&mut self, report: Report, rates: &Rates, records_per_s: f64) {
        if !self.paused {
            self.report = Some(report);
            self.rates = rates.clone();
            self.records_per_s = records_per_s;
        }
    }

    fn vmas_sorted<'r>(&self, r: &'r Report) -> Vec<&'r VmaReport> {
        let mut v: Vec<&VmaReport> = r.vmas.iter().collect();
        let key = |x: &VmaReport| -> f64 {
            match self.sort {
                Sort::Rate => self.rates.vma(&x.keys).unwrap_or(0.0),
                Sort::Fallback => x.stats.fallback_rate.unwrap_or(0.0),
                Sort::P99 => x.stats.latency_ns.map_or(0, |l| l.p99) as f64,
                Sort::Bytes => x.stats.bytes_mapped.unwrap_or(0) as f64,
            }
        };
        v.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then(b.stats.faults.cmp(&a.stats.faults))
        });
        v
    }

    fn processes_sorted<'r>(&self, r: &'r Report) -> Vec<&'r ProcessReport> {
        let mut v: Vec<&ProcessReport> = r.processes.iter().collect();
        let key = |x: &ProcessReport| -> f64 {
            match self.sort {
                Sort::Rate => self.rates.pid(x.pid).unwrap_or(0.0),
                Sort::Fallback => x.stats.fallback_rate.unwrap_or(0.0),
                Sort::P99 => x.stats.latency_ns.map_or(0, |l| l.p99) as f64,
                Sort::Bytes => x.stats.bytes_mapped.unwrap_or(0) as f64,
            }
        };
        v.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then(b.stats.faults.cmp(&a.stats.faults))
        });
        v
    }

    /// The screen's lines for a `width` × `height` terminal: the header, the key line and
    /// the table, each line at most `width` wide.
    pub fn lines(&self, width: usize, height: usize) -> Vec<(String, Style)> {
        let dim = Style::default().add_modifier(Modifier::DIM);
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let Some(r) = &self.report else {
            return vec![("huge-fault: waiting for the first interval…".into(), bold)];
        };
        let t = &r.totals;
        let l = &r.loss;
        let mut out = vec![
            (
                format!(
                    "huge-fault  {} mode  {:.0}s{}",
                    r.mode.name(),
                    r.duration_s,
                    if self.paused { "  PAUSED (space)" } else { "" }
                ),
                bold,
            ),
            (
                format!(
                    "{:.0} faults/s  {:.0} records/s  drops {}  lost {}",
                    self.rates.total,
                    self.records_per_s,
                    l.ringbuf_drops,
                    l.vma_table_overflow_faults
                        + l.process_table_overflow_faults
                        + l.malformed_records
                ),
                Style::default(),
            ),
        ];
        out.push((
            match (&t.entries, t.fallback_rate) {
                (Some(_), Some(rate)) => format!(
                    "{} faults: {} ({} mapped), fallback {:.1}%",
                    t.faults,
                    t.size_mix(),
                    fmt_size(t.bytes_mapped.unwrap_or(0)),
                    rate * 100.0
                ),
                _ => format!(
                    "{} faults, major {}; sizes not visible in this mode",
                    t.faults, t.major
                ),
            },
            Style::default(),
        ));
        let tab = |x: Tab, s: &str| {
            if self.tab == x {
                format!("[{}]", s.to_uppercase())
            } else {
                s.to_string()
            }
        };
        out.push((
            format!(
                "{} {} {}  sort: {} (s r f l b)  space: pause  q: quit",
                tab(Tab::Processes, "p:processes"),
                tab(Tab::Vmas, "v:vmas"),
                tab(Tab::Chains, "c:chains"),
                self.sort.name()
            ),
            dim,
        ));
        let rows = height.saturating_sub(out.len() + 1);
        let table = match self.tab {
            Tab::Processes => tables::processes(
                self.processes_sorted(r).into_iter().take(rows),
                Some(&self.rates),
            ),
            Tab::Vmas => tables::vmas(
                self.vmas_sorted(r).into_iter().take(rows),
                Some(&self.rates),
            ),
            Tab::Chains => tables::chains(self.vmas_sorted(r).into_iter().take(rows), 3),
        };
        let text = table.render(Some(width));
        for (i, line) in text.lines().take(rows + 1).enumerate() {
            let style = if i == 0 {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            out.push((line.to_string(), style));
        }
        if self.tab == Tab::Chains && !r.has_chains() {
            out.push(("no chains: this mode does not see levels".into(), dim));
        }
        out.into_iter()
            .map(|(l, s)| (shorten(&l, width, Shrink::End), s))
            .collect()
    }
}

/// The terminal in the full-screen view, and its keyboard.
pub struct Screen {
    terminal: Option<DefaultTerminal>,
    keys: Keys,
    pub state: State,
}

impl Screen {
    /// Takes over the terminal (alternate screen, raw mode); `None` if it cannot.
    pub fn start() -> Option<Screen> {
        let terminal = ratatui::try_init().ok()?;
        Some(Screen {
            terminal: Some(terminal),
            keys: Keys::start(),
            state: State::default(),
        })
    }

    pub fn update(&mut self, report: Report, rates: &Rates, records_per_s: f64) {
        self.state.update(report, rates, records_per_s);
    }

    pub fn draw(&mut self) -> Result<()> {
        let Some(t) = self.terminal.as_mut() else {
            return Ok(());
        };
        let state = &self.state;
        t.draw(|f| {
            let area = f.area();
            let lines: Vec<Line> = state
                .lines(usize::from(area.width), usize::from(area.height))
                .into_iter()
                .map(|(l, s)| Line::from(Span::styled(l, s)))
                .collect();
            f.render_widget(Paragraph::new(lines), area);
        })
        .map(|_| ())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Error::BrokenPipe
            } else {
                Error::io("cannot draw the live view", e)
            }
        })
    }

    /// The key presses, for the event loop to wait on (taken once).
    pub fn take_keys(&mut self) -> Option<UnboundedReceiver<KeyEvent>> {
        self.keys.rx.take()
    }

    /// What a key does; the view is redrawn when it changed.
    pub fn on_key(&mut self, k: KeyEvent) -> Control {
        match self.state.key(k) {
            Action::Quit => Control::Quit,
            Action::Redraw => {
                let _ = self.draw();
                Control::Continue
            }
            Action::Nothing => Control::Continue,
        }
    }

    /// Gives the terminal back as it was.
    pub fn stop(mut self) {
        self.keys.stop();
        if self.terminal.take().is_some() {
            ratatui::restore();
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if self.terminal.take().is_some() {
            ratatui::restore();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventKind;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent {
            code: c,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: ratatui::crossterm::event::KeyEventState::NONE,
        }
    }

    #[test]
    fn keys_switch_tabs_sorts_and_pause() {
        let mut s = State::default();
        assert_eq!((s.tab, s.sort), (Tab::Vmas, Sort::Rate));
        assert_eq!(s.key(key(KeyCode::Char('p'))), Action::Redraw);
        assert_eq!(s.tab, Tab::Processes);
        s.key(key(KeyCode::Tab));
        assert_eq!(s.tab, Tab::Vmas);
        s.key(key(KeyCode::Char('l')));
        assert_eq!(s.sort, Sort::P99);
        s.key(key(KeyCode::Char('s')));
        assert_eq!(s.sort, Sort::Bytes);
        s.key(key(KeyCode::Char(' ')));
        assert!(s.paused);
        assert_eq!(s.key(key(KeyCode::Char('x'))), Action::Nothing);
        assert_eq!(s.key(key(KeyCode::Char('q'))), Action::Quit);
        let mut ctrl_c = key(KeyCode::Char('c'));
        ctrl_c.modifiers = KeyModifiers::CONTROL;
        assert_eq!(s.key(ctrl_c), Action::Quit);
    }
}
