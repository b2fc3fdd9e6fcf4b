//! Timestamps and the injectable clock.
//!
//! abkit keeps its own small UTC timestamp (milliseconds since the Unix epoch, RFC 3339 on the
//! wire) instead of pulling in a date-time crate: the crate only ever needs "now", ordering,
//! differences in whole days and the `2024-02-01T12:00:00Z` form the source APIs use.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision, written as RFC 3339 (`2024-02-01T12:00:00Z`).
///
/// # Examples
///
/// ```
/// use abkit::Timestamp;
///
/// let t: Timestamp = "2024-02-01T12:00:00Z".parse()?;
/// assert_eq!(t.to_string(), "2024-02-01T12:00:00Z");
/// assert_eq!(t.unix_millis(), 1_706_788_800_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// A string that is not an RFC 3339 UTC timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {value:?}: expected RFC 3339 such as 2024-02-01T12:00:00Z")]
pub struct TimestampError {
    value: String,
}

const MS_PER_DAY: i64 = 86_400_000;
/// Years 0000..=9999 only: keeps every computation far from overflow.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the Unix epoch, clamped to years 0000..=9999.
    pub const fn from_unix_millis(ms: i64) -> Timestamp {
        if ms < MIN_MS {
            Timestamp(MIN_MS)
        } else if ms > MAX_MS {
            Timestamp(MAX_MS)
        } else {
            Timestamp(ms)
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `ms` milliseconds (saturating at the representable range).
    pub const fn add_millis(self, ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(self.0.saturating_add(ms))
    }

    /// Whole days from `earlier` to `self` (0 when `earlier` is later).
    pub fn whole_days_since(self, earlier: Timestamp) -> u64 {
        let d = self.0.saturating_sub(earlier.0) / MS_PER_DAY;
        u64::try_from(d).unwrap_or(0)
    }
}

// Howard Hinnant's civil-from-days / days-from-civil algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = ms_of_day / 1000;
        let ms = ms_of_day % 1000;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )?;
        if ms != 0 {
            write!(f, ".{ms:03}")?;
        }
        f.write_str("Z")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)`; fractions beyond milliseconds are truncated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rfc3339(s).ok_or_else(|| TimestampError {
            value: s.chars().take(64).collect(),
        })
    }
}

fn digits(b: &[u8], from: usize, len: usize) -> Option<i64> {
    let part = b.get(from..from + len)?;
    part.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    if b.get(16) != Some(&b':') {
        return None;
    }
    let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (h, mi, se) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(mo - 1).ok()?)?;
    if !(1..=max_day).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let (oh, om) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 60 + om;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let total = ((days * 24 + h) * 60 + mi - offset_min) * 60 + se.min(59);
    Some(Timestamp::from_unix_millis(total * 1000 + ms))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the facade gets "now" from. Inject your own in tests.
///
/// The decision path never reads a clock; only the control and event planes do.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_unix_millis(ms)
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// # Examples
///
/// ```
/// use abkit::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new("2025-01-01T00:00:00Z".parse()?);
/// clock.advance_millis(86_400_000);
/// assert_eq!(clock.now().to_string(), "2025-01-02T00:00:00Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock(AtomicI64::new(at.unix_millis()))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.unix_millis(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_millis(&self, ms: i64) {
        let now = self.now();
        self.set(now.add_millis(ms));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_instants() {
        for (s, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2024-02-29T23:59:59.123Z", 1_709_251_199_123),
            ("1969-12-31T23:59:59Z", -1000),
            ("2025-01-15T14:05:00Z", 1_736_949_900_000),
        ] {
            let t: Timestamp = s.parse().unwrap();
            assert_eq!(t.unix_millis(), ms, "{s}");
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let t: Timestamp = "2024-02-01T13:30:00.5+01:30".parse().unwrap();
        assert_eq!(t.to_string(), "2024-02-01T12:00:00.500Z");
    }

    #[test]
    fn rejects_garbage_naming_the_value() {
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2024-02-01",
            "2024-02-01T25:00:00Z",
            "x".repeat(30).as_str(),
        ] {
            let err = bad.parse::<Timestamp>().unwrap_err();
            assert!(err.to_string().contains("invalid timestamp"), "{bad}");
        }
    }

    #[test]
    fn whole_days() {
        let a: Timestamp = "2024-01-28T12:00:00Z".parse().unwrap();
        let b: Timestamp = "2024-02-04T11:59:59Z".parse().unwrap();
        assert_eq!(b.whole_days_since(a), 6);
        assert_eq!(a.whole_days_since(b), 0);
    }
}
