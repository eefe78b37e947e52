//! How numbers read in the tables: sizes, and `-` for what the mode cannot see.

/// `64.0M`-style sizes.
pub fn fmt_size(bytes: u64) -> String {
    const U: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}")
    } else {
        format!("{v:.1}{}", U[i])
    }
}

/// `-` for what the mode cannot see.
pub fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}
