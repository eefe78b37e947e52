//! Log-linear latency buckets, shared by the kernel side (aggregated faults carry a bucket,
//! not a latency) and the tool's histograms: values below 16 ns are exact, then 8 buckets
//! per power of two, so a bucket's upper bound is within 12.5 % of any value in it.

pub const SUB_BITS: u32 = 3;
pub const SUB: u64 = 1 << SUB_BITS;
/// No latency (the fault's start was not seen).
pub const NONE: u32 = u32::MAX;

/// Index of the highest set bit of `v` (`v` > 0). Branches only: BPF has no such
/// instruction and the verifier wants no loops.
#[inline(always)]
pub fn msb(mut v: u64) -> u32 {
    let mut r = 0;
    if v >> 32 != 0 {
        v >>= 32;
        r += 32;
    }
    if v >> 16 != 0 {
        v >>= 16;
        r += 16;
    }
    if v >> 8 != 0 {
        v >>= 8;
        r += 8;
    }
    if v >> 4 != 0 {
        v >>= 4;
        r += 4;
    }
    if v >> 2 != 0 {
        v >>= 2;
        r += 2;
    }
    if v >> 1 != 0 {
        r += 1;
    }
    r
}

/// The bucket of `v` nanoseconds.
#[inline(always)]
pub fn bucket(v: u64) -> u32 {
    if v < 2 * SUB {
        return v as u32;
    }
    let exp = msb(v); // >= SUB_BITS + 1
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    (2 * SUB + (u64::from(exp) - u64::from(SUB_BITS) - 1) * SUB + sub) as u32
}

/// The last bucket: the one of `u64::MAX`.
pub const LAST: u32 = (2 * SUB + (63 - SUB_BITS as u64 - 1) * SUB + (SUB - 1)) as u32;

/// The largest value in bucket `i`; `u64::MAX` for a bucket past the last (a class counted
/// in the kernel carries its bucket, and a damaged recording may carry any number).
pub fn upper(i: u32) -> u64 {
    if i >= LAST {
        return u64::MAX;
    }
    let i = u64::from(i);
    if i < 2 * SUB {
        return i;
    }
    let exp = (i - 2 * SUB) / SUB + u64::from(SUB_BITS) + 1;
    let sub = (i - 2 * SUB) % SUB;
    let low = (1u64 << exp) | (sub << (exp - u64::from(SUB_BITS)));
    low + ((1u64 << (exp - u64::from(SUB_BITS))) - 1)
}

#[cfg(test)]
mod tests {
    use crate::latency;

    #[test]
    fn latency_buckets_bound_their_values() {
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, u64::MAX / 3, u64::MAX]) {
            let b = latency::bucket(v);
            let up = latency::upper(b);
            assert!(up >= v, "{v} above its bucket's bound {up}");
            assert!(up - v <= v / 8, "{v}: bound {up} more than 12.5% away");
            assert_eq!(
                latency::bucket(up),
                b,
                "{v}: the bound is in another bucket"
            );
            if v > 0 {
                assert_eq!(latency::msb(v), 63 - v.leading_zeros());
            }
        }
        // Found by the records fuzzer: a bucket past the last one.
        assert_eq!(latency::bucket(u64::MAX), latency::LAST);
        for b in [latency::LAST, latency::LAST + 1, latency::NONE - 1] {
            assert_eq!(latency::upper(b), u64::MAX);
        }
    }
}
