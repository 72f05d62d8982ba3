//! Media time: a small rational type and exact rescaling into the 90 kHz clock that MPEG-TS
//! (and everything downstream of the encoders in this crate) counts in.

use std::time::Duration;

/// Ticks per second of the MPEG system clock used for PTS/DTS (ISO 13818-1 2.4.3.7).
pub const CLOCK_90K: u32 = 90_000;

/// The 90 kHz time base, `1/90000` seconds per tick.
pub const TIME_BASE_90K: Rational = Rational::new(1, CLOCK_90K);

/// A non-negative fraction `num/den`.
///
/// Used two ways, always said at the field: as a *time base* (seconds per tick, e.g. `1/90000`)
/// and as a *frame rate* (frames per second, e.g. `30000/1001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Numerator.
    pub num: u32,
    /// Denominator; a zero here makes the value invalid and is rejected where it is used.
    pub den: u32,
}

impl Rational {
    /// Builds `num/den` (not reduced, not validated: validation happens where it is used).
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    /// True when both parts are non-zero, i.e. usable as a time base or a frame rate.
    pub const fn is_positive(self) -> bool {
        self.num != 0 && self.den != 0
    }

    /// The reciprocal `den/num`: turns a frame rate into the time base of one frame per tick.
    pub const fn recip(self) -> Self {
        Self::new(self.den, self.num)
    }

    /// The value as a float (for logs and encoder knobs that take floats).
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

/// Rescales `value` ticks of `from` into ticks of `to`, rounding to nearest (ties away from
/// zero). Computed in 128 bits so realistic timestamps never overflow. Both time bases must be
/// positive (callers validate; a zero denominator yields 0 rather than a panic).
pub fn rescale(value: i64, from: Rational, to: Rational) -> i64 {
    if !from.is_positive() || !to.is_positive() {
        return 0;
    }
    // value * from.num / from.den = x * to.num / to.den  =>  x = value * from.num * to.den / (from.den * to.num)
    let n = i128::from(value) * i128::from(from.num) * i128::from(to.den);
    let d = i128::from(from.den) * i128::from(to.num);
    let half = d / 2;
    let q = if n >= 0 { (n + half) / d } else { (n - half) / d };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Converts 90 kHz ticks into a [`Duration`] (negative spans become zero).
pub fn ticks_90k_to_duration(ticks: i64) -> Duration {
    if ticks <= 0 {
        return Duration::ZERO;
    }
    let ticks = ticks as u64;
    Duration::new(
        ticks / u64::from(CLOCK_90K),
        ((ticks % u64::from(CLOCK_90K)) * 1_000_000_000 / u64::from(CLOCK_90K)) as u32,
    )
}

/// Converts a [`Duration`] into 90 kHz ticks, rounding to nearest and saturating.
pub fn duration_to_ticks_90k(d: Duration) -> i64 {
    let ticks = (d.as_nanos() * u128::from(CLOCK_90K) + 500_000_000) / 1_000_000_000;
    i64::try_from(ticks).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_frame_index_to_90k() {
        let tb30 = Rational::new(1, 30);
        assert_eq!(rescale(1, tb30, TIME_BASE_90K), 3000);
        assert_eq!(rescale(61, tb30, TIME_BASE_90K), 183_000);
        let ntsc = Rational::new(1001, 30000);
        assert_eq!(rescale(1, ntsc, TIME_BASE_90K), 3003);
        // Rounds to nearest: 1 ms = 90 ticks, 1/3 ms = 30 ticks.
        assert_eq!(rescale(1, Rational::new(1, 3000), TIME_BASE_90K), 30);
        assert_eq!(rescale(-1, tb30, TIME_BASE_90K), -3000);
        assert_eq!(rescale(5, Rational::new(1, 0), TIME_BASE_90K), 0);
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(duration_to_ticks_90k(Duration::from_secs(2)), 180_000);
        assert_eq!(ticks_90k_to_duration(180_000), Duration::from_secs(2));
        assert_eq!(ticks_90k_to_duration(3003), Duration::from_nanos(33_366_666));
        assert_eq!(ticks_90k_to_duration(-5), Duration::ZERO);
    }
}
