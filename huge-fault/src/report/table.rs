//! Tables that fit a width without wrapping: columns have priorities, the least important
//! go first, then text columns shrink (paths in the middle, names at the end), numbers and
//! their units never split. With no width (a pipe or a file), every column at full width.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// How a column gives up width when the table does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shrink {
    /// Never: numbers, sizes, addresses.
    No,
    /// Cut at the end with `…` (names).
    End,
    /// Cut in the middle with `…` (paths: `/usr/…/libcuda.so.1`).
    Middle,
}

#[derive(Clone, Debug)]
pub struct Column {
    pub header: &'static str,
    pub align: Align,
    /// 0: essential, always shown; higher numbers are dropped first.
    pub priority: u8,
    pub shrink: Shrink,
    /// The narrowest a shrinkable column gets.
    pub min: usize,
}

impl Column {
    pub const fn num(header: &'static str, priority: u8) -> Self {
        Column {
            header,
            align: Align::Right,
            priority,
            shrink: Shrink::No,
            min: 0,
        }
    }

    pub const fn text(header: &'static str, priority: u8) -> Self {
        Column {
            header,
            align: Align::Left,
            priority,
            shrink: Shrink::No,
            min: 0,
        }
    }

    pub const fn shrinks(mut self, shrink: Shrink, min: usize) -> Self {
        self.shrink = shrink;
        self.min = min;
        self
    }
}

/// A table's columns and rows, as text cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
}

/// Which columns a width leaves, and how wide each is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fit {
    /// (column index, width), in column order.
    pub columns: Vec<(usize, usize)>,
}

/// Characters on screen (every cell is plain text: one per `char`).
pub fn width_of(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `w` characters the way `shrink` says.
pub fn shorten(s: &str, w: usize, shrink: Shrink) -> String {
    let n = width_of(s);
    if n <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    match shrink {
        Shrink::Middle if w >= 3 => {
            let tail = (w - 1) / 2 + (w - 1) % 2;
            let head = w - 1 - tail;
            let mut out: String = chars[..head].iter().collect();
            out.push('…');
            out.extend(&chars[n - tail..]);
            out
        }
        _ => {
            let mut out: String = chars[..w - 1].iter().collect();
            out.push('…');
            out
        }
    }
}

const GAP: usize = 1;

impl Table {
    pub fn new(columns: Vec<Column>) -> Self {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// Each column's full width: its header or its widest cell.
    fn natural(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .map(|r| width_of(&r[i]))
                    .chain([width_of(c.header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The columns that fit in `width` (all of them when `None`).
    pub fn fit(&self, width: Option<usize>) -> Fit {
        let natural = self.natural();
        let mut shown: Vec<(usize, usize)> = natural.iter().copied().enumerate().collect();
        let Some(width) = width else {
            return Fit { columns: shown };
        };
        let total = |s: &[(usize, usize)]| {
            s.iter().map(|(_, w)| w).sum::<usize>() + GAP * s.len().saturating_sub(1)
        };
        // Text columns shrink, the widest first, one character at a time, down to their
        // minimum (never below the header).
        let shrink = |mut s: Vec<(usize, usize)>| {
            while total(&s) > width {
                let Some(c) = s
                    .iter_mut()
                    .filter(|(i, w)| {
                        let c = &self.columns[*i];
                        c.shrink != Shrink::No && *w > c.min.max(width_of(c.header))
                    })
                    .max_by_key(|(_, w)| *w)
                else {
                    break;
                };
                c.1 -= 1;
            }
            s
        };
        loop {
            if total(&shown) <= width {
                break;
            }
            let lowest = shown
                .iter()
                .map(|(i, _)| self.columns[*i].priority)
                .max()
                .unwrap_or(0);
            // Columns of priority 2 and more go before anything shrinks; those of priority
            // 1 (a VMA's mapping name) only when shrinking text is not enough.
            if lowest <= 1 {
                let shrunk = shrink(shown.clone());
                if total(&shrunk) <= width || lowest == 0 {
                    shown = shrunk;
                    break;
                }
            }
            let pos = shown
                .iter()
                .enumerate()
                .filter(|(_, (i, _))| self.columns[*i].priority == lowest)
                .map(|(pos, _)| pos)
                .next_back()
                .expect("a column of that priority");
            shown.remove(pos);
        }
        Fit { columns: shown }
    }

    /// One cell as it shows in a column `w` wide (padded, shortened if it must).
    pub fn cell(&self, col: usize, text: &str, w: usize) -> String {
        let c = &self.columns[col];
        let t = shorten(text, w, c.shrink);
        let pad = w.saturating_sub(width_of(&t));
        match c.align {
            Align::Left => format!("{t}{}", " ".repeat(pad)),
            Align::Right => format!("{}{t}", " ".repeat(pad)),
        }
    }

    /// The header and rows as lines, fitted to `width`; a line still too wide (the
    /// essential columns alone exceed it) is cut at the width, never wrapped.
    pub fn render(&self, width: Option<usize>) -> String {
        let fit = self.fit(width);
        let line = |cells: Vec<String>| {
            let l = cells.join(&" ".repeat(GAP));
            let l = l.trim_end().to_string();
            match width {
                Some(w) if width_of(&l) > w => shorten(&l, w, Shrink::End),
                _ => l,
            }
        };
        let mut out = String::new();
        let header: Vec<String> = fit
            .columns
            .iter()
            .map(|&(i, w)| self.cell(i, self.columns[i].header, w))
            .collect();
        out.push_str(&line(header));
        out.push('\n');
        for r in &self.rows {
            let cells = fit
                .columns
                .iter()
                .map(|&(i, w)| self.cell(i, &r[i], w))
                .collect();
            out.push_str(&line(cells));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(vec![
            Column::num("PID", 0),
            Column::text("COMM", 0).shrinks(Shrink::End, 6),
            Column::text("MAPPING", 1).shrinks(Shrink::Middle, 8),
            Column::num("FAULTS", 0),
            Column::num("MAJOR", 3),
            Column::num("P50", 2),
        ]);
        t.push(vec![
            "4242".into(),
            "python3.11-worker".into(),
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
            "131073".into(),
            "0".into(),
            "10.2µs".into(),
        ]);
        t
    }

    #[test]
    fn full_width_without_a_terminal() {
        let s = sample().render(None);
        assert_eq!(
            s,
            "PID COMM              MAPPING                                FAULTS MAJOR    P50\n\
             4242 python3.11-worker /usr/lib/x86_64-linux-gnu/libcuda.so.1 131073     0 10.2µs\n"
                .replace("PID COMM", " PID COMM")
        );
    }

    #[test]
    fn narrow_drops_low_priorities_then_shrinks_text_and_never_wraps() {
        let t = sample();
        for width in [80, 60, 40, 30, 20] {
            let s = t.render(Some(width));
            assert_eq!(s.lines().count(), 2, "{width}: {s}");
            for l in s.lines() {
                assert!(width_of(l) <= width, "{width}: {l:?}");
            }
            if width >= 30 {
                // Essential columns and whole numbers stay.
                assert!(s.contains("131073") && s.contains("4242"), "{width}: {s}");
            }
        }
        let s = t.render(Some(60));
        assert!(!s.contains("MAJOR") && !s.contains("P50"), "{s}");
        assert!(s.contains("/usr/") && s.contains("libcuda.so.1"), "{s}");
        let s = t.render(Some(40));
        assert!(s.contains('…'), "{s}");
        assert!(!s.contains("MAPPING") || s.contains("/u"), "{s}");
    }

    #[test]
    fn shortening_keeps_both_ends_of_a_path() {
        assert_eq!(
            shorten("/usr/lib/x86_64-linux-gnu/libcuda.so.1", 20, Shrink::Middle),
            "/usr/lib/…bcuda.so.1"
        );
        assert_eq!(shorten("hf-workload", 8, Shrink::End), "hf-work…");
        assert_eq!(shorten("short", 8, Shrink::End), "short");
    }
}
