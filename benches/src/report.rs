//! Output: markdown tables (pasted into BENCHMARKS.md as printed), each figure with its
//! Rust/Python ratio beside it, and the SVG chart of latency and CPU versus stream count.

use std::path::Path;

use plotters::prelude::*;

use crate::scenarios::streams::StreamsResult;

/// Picks the plotted figure out of a result.
type Metric = fn(&StreamsResult) -> Option<f64>;

/// A number with `prec` decimals, or `n/a`.
pub fn num(x: Option<f64>, prec: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.prec$}"),
        _ => "n/a".into(),
    }
}

/// `rust / python` with two decimals, or `n/a`.
pub fn ratio(rust: Option<f64>, python: Option<f64>) -> String {
    match (rust, python) {
        (Some(r), Some(p)) if p > 0.0 && r.is_finite() && p.is_finite() => format!("{:.2}", r / p),
        _ => "n/a".into(),
    }
}

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

/// Draws p99 latency and CPU per stream-minute against the stream count for both SDKs.
pub fn write_chart(path: &Path, rust: &[StreamsResult], python: &[StreamsResult]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(500);
    let max_n = rust.iter().chain(python).map(|r| r.streams).max().unwrap_or(10).max(10) as f64 * 1.3;
    let panels: [(&DrawingArea<_, _>, &str, &str, Metric); 2] = [
        (&left, "p99 write-to-read latency", "ms (log)", |r| r.p99_ms),
        (&right, "client CPU per stream-minute", "CPU seconds (log)", |r| Some(r.cpu_s_per_stream_minute)),
    ];
    for (area, title, unit, metric) in panels {
        let values: Vec<f64> = rust.iter().chain(python).filter_map(metric).filter(|v| *v > 0.0).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min).min(1.0) / 2.0;
        let hi = values.iter().copied().fold(0.0, f64::max).max(lo * 10.0) * 2.0;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((8f64..max_n).log_scale(), (lo..hi).log_scale())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("concurrent streams (log)")
            .y_desc(unit)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (name, results, color) in [("Rust SDK", rust, RED), ("Python SDK", python, BLUE)] {
            let points: Vec<(f64, f64)> = results
                .iter()
                .filter_map(|r| metric(r).filter(|v| *v > 0.0).map(|v| (r.streams as f64, v)))
                .collect();
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_missing_values() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25");
        assert_eq!(ratio(Some(1.0), None), "n/a");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "n/a");
        assert_eq!(num(Some(1.234), 1), "1.2");
        assert_eq!(num(Some(f64::NAN), 1), "n/a");
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }

    #[test]
    fn chart_is_written() {
        let dir = std::env::temp_dir().join(format!("lpgw-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        let r = |n, p99, cpu| StreamsResult {
            streams: n,
            p99_ms: Some(p99),
            cpu_s_per_stream_minute: cpu,
            ..Default::default()
        };
        write_chart(&path, &[r(10, 2.0, 0.01), r(100, 3.0, 0.008)], &[r(10, 20.0, 0.05)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("Python SDK") && svg.contains("Rust SDK"),
            "{svg:.200}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
