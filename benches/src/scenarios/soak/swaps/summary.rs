//! The swap soak's markdown summary: the deaths, the sessions, the swaps by reason with their
//! recovery times (median and max), each orchestrator's books, and the verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use gateway_actors::live::SwapRecord;
use gateway_core::swap::SwapReason;

use super::session::JobKind;
use super::{SwapSoakReport, PAYMENT_INTERVAL, SESSION_MAX, SESSION_MIN};
use crate::report::table;
use crate::scenarios::soak::{BITRATE, FPS, HEIGHT, WIDTH};

/// A swap reason's kind, for grouping.
pub fn reason_kind(reason: &SwapReason) -> &'static str {
    match reason {
        SwapReason::PublishConnection { .. } => "publish connection failed",
        SwapReason::SegmentsFailed { .. } => "segments failed in a row",
        SwapReason::NoOutput { .. } => "no output (watchdog)",
        SwapReason::PaymentRefused { .. } => "payment refused",
        SwapReason::StreamClosed => "stream closed",
    }
}

/// Median and max of `v` in milliseconds, with how many had a value, or `-`.
fn spread(v: &[Option<Duration>]) -> String {
    let mut ms: Vec<f64> = v.iter().flatten().map(|d| d.as_secs_f64() * 1000.0).collect();
    if ms.is_empty() {
        return "-".into();
    }
    ms.sort_by(f64::total_cmp);
    format!("{:.0} / {:.0} ({}/{})", ms[ms.len() / 2], ms[ms.len() - 1], ms.len(), v.len())
}

fn count_spread(v: &[u64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    format!("{} / {}", v[v.len() / 2], v[v.len() - 1])
}

impl SwapSoakReport {
    /// Every swap of every session.
    pub fn swaps(&self) -> Vec<&SwapRecord> {
        self.sessions.iter().filter_map(|s| s.status.as_ref()).flat_map(|s| s.swaps.iter()).collect()
    }

    /// The markdown summary; ends with `soak: PASS` or `soak: FAIL (n)`.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "## Soak with orchestrator deaths: {} streams, {} orchestrators, {:.0} s, seed {}\n\nwall {:.0} s including teardown and checks\n",
            self.streams, self.orchestrators, self.seconds, self.seed, self.wall_s
        );
        let lv2v = self.sessions.iter().filter(|s| s.kind == JobKind::Lv2v).count();
        let _ = writeln!(
            o,
            "Load: LiveStreams with swaps on, LV2V and BYOC in turn, {WIDTH}x{HEIGHT} @ {FPS} fps (H.264 {} kbit/s) with an output reader each, sessions of {}-{} s back to back; payments every {} s.\n",
            BITRATE / 1000,
            SESSION_MIN.as_secs(),
            SESSION_MAX.as_secs(),
            PAYMENT_INTERVAL.as_secs()
        );
        let kill_ms: Vec<Option<Duration>> = self.deaths.iter().map(|d| Some(d.kill_took)).collect();
        let _ = writeln!(
            o,
            "Deaths: {} asked, {} carried out ({} failed); downtime {} ms, kill() took {} ms (median / max)\n",
            self.deaths_asked,
            self.deaths.len(),
            self.deaths.iter().filter(|d| d.error.is_some()).count(),
            spread(&self.deaths.iter().map(|d| Some(d.death.downtime)).collect::<Vec<_>>()),
            spread(&kill_ms)
        );
        let frames_in: u64 = self.sessions.iter().filter_map(|s| s.media.as_ref()).map(|m| m.frames_in).sum();
        let dropped: u64 =
            self.sessions.iter().filter_map(|s| s.media.as_ref()).map(|m| m.frames_dropped).sum();
        let encoded: u64 =
            self.sessions.iter().filter_map(|s| s.media.as_ref()).map(|m| m.bytes_encoded).sum();
        let drained: u64 =
            self.sessions.iter().filter_map(|s| s.media.as_ref()).map(|m| m.bytes_drained).sum();
        let units: u64 = self.sessions.iter().map(|s| s.output_units).sum();
        let rows = vec![
            vec![
                "sessions (LV2V / BYOC)".into(),
                format!("{} ({lv2v} / {})", self.sessions.len(), self.sessions.len() - lv2v),
            ],
            vec![
                "sessions that swapped".into(),
                self.sessions
                    .iter()
                    .filter(|s| s.status.as_ref().is_some_and(|st| !st.swaps.is_empty()))
                    .count()
                    .to_string(),
            ],
            vec!["frames in / dropped".into(), format!("{frames_in} / {dropped}")],
            vec!["bytes encoded / drained".into(), format!("{encoded} / {drained}")],
            vec!["output access units read".into(), units.to_string()],
            vec![
                "sessions with a problem".into(),
                self.sessions.iter().filter(|s| !s.problems().is_empty()).count().to_string(),
            ],
        ];
        let _ = writeln!(o, "{}", table(&["sessions", ""], &rows));

        let swaps = self.swaps();
        let mut by_reason: BTreeMap<&str, Vec<&SwapRecord>> = BTreeMap::new();
        for s in &swaps {
            by_reason.entry(reason_kind(&s.reason)).or_default().push(s);
        }
        let row = |name: String, v: &[&SwapRecord]| {
            vec![
                name,
                v.len().to_string(),
                spread(&v.iter().map(|s| Some(s.restarted_after)).collect::<Vec<_>>()),
                spread(&v.iter().map(|s| s.first_segment_after).collect::<Vec<_>>()),
                spread(&v.iter().map(|s| s.first_output_after).collect::<Vec<_>>()),
                count_spread(&v.iter().map(|s| s.frames_dropped).collect::<Vec<_>>()),
            ]
        };
        let mut rows: Vec<Vec<String>> = by_reason.iter().map(|(k, v)| row((*k).to_owned(), v)).collect();
        rows.push(row("**all**".into(), &swaps));
        let _ = writeln!(
            o,
            "Swaps (ms: median / max (with a value / swaps); frames dropped: median / max):\n\n{}",
            table(
                &[
                    "reason",
                    "swaps",
                    "restarted after",
                    "first segment after",
                    "first output after",
                    "frames dropped"
                ],
                &rows
            )
        );

        let rows: Vec<Vec<String>> = self
            .books
            .iter()
            .map(|b| {
                vec![
                    b.url.clone(),
                    b.deaths.to_string(),
                    format!("{} / {}", b.gateway_starts, b.ledger_starts()),
                    format!("{} / {}", b.gateway_recurring, b.ledger_recurring()),
                    format!("{} / {}", b.gateway_stop_payments, b.ledger_stop_payments()),
                    format!("{} / {}", b.running_after.sessions, b.running_after.channels),
                ]
            })
            .collect();
        let _ = writeln!(
            o,
            "Orchestrators (gateway / ledger):\n\n{}",
            table(
                &[
                    "orchestrator",
                    "deaths",
                    "starts paid",
                    "recurring payments",
                    "stop payments (gateway / ledger)",
                    "running after (sessions / channels)"
                ],
                &rows
            )
        );
        if self.failures.is_empty() {
            let _ = writeln!(o, "soak: PASS");
        } else {
            let _ = writeln!(o, "Failures:\n");
            for f in self.failures.iter().take(50) {
                let _ = writeln!(o, "- {f}");
            }
            if self.failures.len() > 50 {
                let _ = writeln!(o, "- ... and {} more", self.failures.len() - 50);
            }
            let _ = writeln!(o, "\nsoak: FAIL ({})", self.failures.len());
        }
        o
    }
}
