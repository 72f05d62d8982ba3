//! The soak's markdown summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gateway_actors::media::MediaStats;

use super::schedule::{is_segment_stream, FaultKind};
use super::sessions::{SessionRecord, SubscriberRecord};
use super::{SoakReport, BITRATE, CHUNKS_PER_SEGMENT, CHUNK_BYTES, FPS, HEIGHT, STALL_TIMEOUT, WIDTH};
use crate::report::table;
use crate::sys::peak_rss_kib;

impl SoakReport {
    /// The markdown summary; ends with `soak: PASS` or `soak: FAIL (n)`.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let frame: Vec<&SessionRecord> = self.sessions.iter().filter(|s| !s.segment_stream).collect();
        let seg: Vec<&SessionRecord> = self.sessions.iter().filter(|s| s.segment_stream).collect();
        let media =
            |f: fn(&MediaStats) -> u64| frame.iter().filter_map(|s| s.media.as_ref()).map(f).sum::<u64>();
        let sum = |v: &[&SessionRecord], f: fn(&SessionRecord) -> u64| v.iter().map(|s| f(s)).sum::<u64>();
        let _ = writeln!(
            o,
            "## Soak: {} streams, {:.0} s, seed {}\n\nschedule fingerprint {:016x}; wall {:.0} s including teardown\n",
            self.streams, self.seconds, self.seed, self.fingerprint, self.wall_s
        );
        let _ = writeln!(
            o,
            "Load: {} frame streams ({WIDTH}x{HEIGHT} @ {FPS} fps, H.264 {} kbit/s, VideoPublisher) and {} segment streams ({CHUNKS_PER_SEGMENT} x {CHUNK_BYTES} B per 1 s segment, TricklePublisher); a subscriber on every 4th slot; stall timeout {:?}.\n",
            (0..self.streams).filter(|s| !is_segment_stream(*s)).count(),
            BITRATE / 1000,
            (0..self.streams).filter(|s| is_segment_stream(*s)).count(),
            STALL_TIMEOUT
        );
        let rows: Vec<Vec<String>> = FaultKind::ALL
            .iter()
            .map(|k| {
                vec![
                    k.name().to_owned(),
                    self.scheduled.get(k).copied().unwrap_or(0).to_string(),
                    self.injected.applied.get(k).copied().unwrap_or(0).to_string(),
                    self.injected.skipped.get(k).copied().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        let _ = writeln!(
            o,
            "Faults:\n\n{}",
            table(&["fault", "scheduled", "applied", "skipped (slot between sessions)"], &rows)
        );
        let ends: BTreeMap<String, u64> = self.sessions.iter().fold(BTreeMap::new(), |mut m, s| {
            let reason: String = s.end.chars().take(60).collect();
            *m.entry(if reason.is_empty() { "setup failed".into() } else { reason }).or_insert(0) += 1;
            m
        });
        let subs: Vec<&SubscriberRecord> =
            self.sessions.iter().filter_map(|s| s.subscriber.as_ref()).collect();
        let mut totals = vec![
            vec![
                "sessions (frame / segment streams)".to_owned(),
                format!("{} ({} / {})", self.sessions.len(), frame.len(), seg.len()),
            ],
            vec!["frames submitted".into(), sum(&frame, |s| s.frames_submitted).to_string()],
            vec!["frames encoded".into(), media(|m| m.frames_encoded).to_string()],
            vec![
                "frames dropped (overflow / debt / non-monotonic / encode failed / stream ended)".into(),
                format!(
                    "{} ({} / {} / {} / {} / {})",
                    media(|m| m.frames_dropped),
                    media(|m| m.drops.overflow),
                    media(|m| m.drops.debt),
                    media(|m| m.drops.non_monotonic),
                    media(|m| m.drops.encode_failed),
                    media(|m| m.drops.stream_ended)
                ),
            ],
            vec![
                "frame streams: segments published / failed".into(),
                format!("{} / {}", media(|m| m.segments_published), media(|m| m.segments_failed)),
            ],
            vec![
                "frame streams: bytes encoded = published + drained".into(),
                format!(
                    "{} = {} + {}",
                    media(|m| m.bytes_encoded),
                    media(|m| m.bytes_published),
                    media(|m| m.bytes_drained)
                ),
            ],
            vec![
                "frame streams: writer restarts".into(),
                media(|m| u64::from(m.writer_restarts)).to_string(),
            ],
            vec![
                "H.264 encoders built / reused / dropped / idle at the end".into(),
                format!(
                    "{} / {} / {} / {}",
                    self.encoders.created, self.encoders.reused, self.encoders.dropped, self.encoders.idle
                ),
            ],
            vec![
                "segment streams: segments ok / failed".into(),
                format!("{} / {}", sum(&seg, |s| s.segments_ok), sum(&seg, |s| s.segments_failed)),
            ],
            vec![
                "segment streams: bytes written = delivered + failed".into(),
                format!(
                    "{} = {} + {}",
                    sum(&seg, |s| s.bytes_written),
                    sum(&seg, |s| s.bytes_delivered),
                    sum(&seg, |s| s.bytes_failed)
                ),
            ],
            vec![
                "server: completed segments / bytes in them".into(),
                format!(
                    "{} / {}",
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.segments_completed),
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.bytes_completed)
                ),
            ],
            vec![
                "server: failed POSTs / refused requests".into(),
                format!(
                    "{} / {}",
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.posts_failed),
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.requests_refused)
                ),
            ],
            vec![
                "subscribers: sessions / segments / bytes read / ended with error".into(),
                format!(
                    "{} / {} / {} / {}",
                    subs.len(),
                    subs.iter().map(|s| s.segments).sum::<u64>(),
                    subs.iter().map(|s| s.bytes).sum::<u64>(),
                    subs.iter().filter(|s| s.error.is_some()).count()
                ),
            ],
        ];
        let m = &self.memory;
        totals.push(vec![
            "client RSS: start / first window / last window / max MiB".into(),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} (windows of {:.0} s after {:.0} s warm-up; allowed growth {:.1}; slope {:+.2} MiB/min)",
                self.client_before.rss_kib as f64 / 1024.0,
                m.first_mib,
                m.last_mib,
                m.max_mib,
                m.window_s,
                m.warmup_s,
                m.allowed_mib,
                m.slope_mib_per_min
            ),
        ]);
        let step = (self.seconds / 10.0).ceil().max(1.0);
        let timeline: Vec<String> = (0..=10)
            .filter_map(|i| {
                let t = i as f64 * step;
                self.samples.iter().find(|s| s.t >= t).map(|s| format!("{:.0}", s.rss_kib as f64 / 1024.0))
            })
            .collect();
        totals.push(vec![format!("client RSS every {step:.0} s, MiB"), timeline.join(", ")]);
        totals.push(vec![
            "client peak RSS (VmHWM) MiB".into(),
            format!("{:.1}", peak_rss_kib().unwrap_or(0) as f64 / 1024.0),
        ]);
        totals.push(vec![
            "CPU, cores (client / server child)".into(),
            format!("{:.2} / {:.2}", self.client_cpu_s / self.seconds, self.server_cpu_s / self.seconds),
        ]);
        totals.push(vec![
            "after teardown: server channels / POSTs / GETs / connections".into(),
            format!(
                "{} / {} / {} / {}",
                self.server_after.channels,
                self.server_after.active_posts,
                self.server_after.active_gets,
                self.server_connections_after
            ),
        ]);
        totals.push(vec![
            "client before -> after: tokio tasks / threads / fds".into(),
            format!(
                "{} -> {} / {} -> {} / {} -> {}",
                self.tasks_before,
                self.tasks_after,
                self.client_before.threads,
                self.client_after.threads,
                self.client_before.fds,
                self.client_after.fds
            ),
        ]);
        let _ = writeln!(o, "Totals:\n\n{}", table(&["", "value"], &totals));
        let end_rows: Vec<Vec<String>> = ends.into_iter().map(|(k, v)| vec![k, v.to_string()]).collect();
        let _ = writeln!(o, "Sessions ended by:\n\n{}", table(&["reason", "sessions"], &end_rows));
        if self.failures.is_empty() {
            let _ = writeln!(o, "soak: PASS");
        } else {
            let _ = writeln!(o, "Failed checks:\n");
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
