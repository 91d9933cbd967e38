//! The hub's charts as server-side SVG: the geometry is computed here, the
//! markup lives in askama templates (`templates/charts/`, escaped like
//! every page).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use askama::Template;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::problem::ProblemClass;

/// A coordinate or length, shown with one decimal.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Px(f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = (self.0 * 10.0).round() / 10.0;
        if v.fract() == 0.0 {
            write!(f, "{v:.0}")
        } else {
            write!(f, "{v:.1}")
        }
    }
}

/// Colours of the classes in charts (as in the stylesheet).
fn class_colour(c: ProblemClass) -> &'static str {
    match c {
        ProblemClass::Active => "#2563eb",
        ProblemClass::ActiveStale => "#b45309",
        ProblemClass::NeedsFollowUp => "#b91c1c",
        ProblemClass::Reconciled => "#7c3aed",
        ProblemClass::Ok => "#15803d",
        ProblemClass::Cancelled => "#6b7280",
    }
}

struct Bar {
    x: Px,
    y: Px,
    w: Px,
    h: Px,
    fill: &'static str,
    title: String,
}

struct Tick {
    x: Px,
    y: Px,
    text: String,
}

struct Legend {
    x: Px,
    text_x: Px,
    fill: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "charts/runs_per_day.svg")]
struct RunsPerDay {
    w: Px,
    h: Px,
    max: u64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    legend: Vec<Legend>,
}

fn day_label(day: i64) -> String {
    let t = Timestamp::from_unix_micros(day * 86_400_000_000);
    t.to_rfc3339().get(..10).unwrap_or_default().to_owned()
}

/// Completed runs per day by class, as stacked bars. `rows` are (day
/// number, class, runs); `today` is today's day number.
pub fn runs_per_day_svg(rows: &[(i64, ProblemClass, u64)], today: i64, days: i64) -> String {
    let (w, h, pad, legend_h) = (640.0_f64, 180.0_f64, 28.0_f64, 18.0_f64);
    let first = today - days + 1;
    let mut per_day: HashMap<i64, Vec<(ProblemClass, u64)>> = HashMap::new();
    for (d, c, n) in rows {
        if *d >= first && *d <= today {
            per_day.entry(*d).or_default().push((*c, *n));
        }
    }
    let max = per_day
        .values()
        .map(|v| v.iter().map(|(_, n)| *n).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (w - pad) / days as f64;
    let plot_h = h - pad - legend_h;
    let mut bars = Vec::new();
    let mut ticks = Vec::new();
    for i in 0..days {
        let day = first + i;
        let x = pad + i as f64 * slot;
        let mut y = legend_h + plot_h;
        let mut parts = per_day.remove(&day).unwrap_or_default();
        parts.sort_by_key(|(c, _)| ProblemClass::ALL.iter().position(|x| x == c));
        for (c, n) in parts {
            let bh = n as f64 / max as f64 * plot_h;
            y -= bh;
            bars.push(Bar {
                x: Px(x + 1.0),
                y: Px(y),
                w: Px((slot - 2.0).max(1.0)),
                h: Px(bh),
                fill: class_colour(c),
                title: format!("{}: {n} {}", day_label(day), c.label()),
            });
        }
        if i % 2 == 0 || days <= 8 {
            ticks.push(Tick {
                x: Px(x + slot / 2.0),
                y: Px(h - 4.0),
                text: day_label(day).get(5..).unwrap_or_default().to_owned(),
            });
        }
    }
    let legend = [
        ProblemClass::Ok,
        ProblemClass::NeedsFollowUp,
        ProblemClass::Reconciled,
        ProblemClass::Cancelled,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, c)| {
        let x = pad + 110.0 * i as f64;
        Legend {
            x: Px(x),
            text_x: Px(x + 13.0),
            fill: class_colour(c),
            label: c.label(),
        }
    })
    .collect();
    RunsPerDay {
        w: Px(w),
        h: Px(h),
        max,
        bars,
        ticks,
        legend,
    }
    .render()
    .unwrap_or_default()
}

const BUCKETS: [(&str, f64); 6] = [
    ("< 1 s", 1.0),
    ("1–10 s", 10.0),
    ("10 s–1 min", 60.0),
    ("1–10 min", 600.0),
    ("10–60 min", 3600.0),
    ("> 1 h", f64::INFINITY),
];

struct Cell {
    x: Px,
    text_x: Px,
    opacity: String,
    bucket: &'static str,
    n: u64,
}

struct DurationRow {
    label: &'static str,
    y: Px,
    text_y: Px,
    cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "charts/durations.svg")]
struct Durations {
    w: Px,
    h: Px,
    cell_w: Px,
    cell_h: Px,
    empty_y: Px,
    heads: Vec<Tick>,
    rows: Vec<DurationRow>,
}

/// Duration distribution per type: runs per duration bucket, one row per
/// type.
pub fn durations_svg(rows: &[(&'static str, Vec<Duration>)]) -> String {
    let (label_w, cell_w, row_h, head) = (170.0_f64, 78.0_f64, 22.0_f64, 20.0_f64);
    let w = label_w + cell_w * BUCKETS.len() as f64;
    let h = head + row_h * rows.len().max(1) as f64;
    let heads = BUCKETS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Tick {
            x: Px(label_w + cell_w * (i as f64 + 0.5)),
            y: Px(13.0),
            text: (*name).to_owned(),
        })
        .collect();
    let rows = rows
        .iter()
        .enumerate()
        .map(|(r, (label, durations))| {
            let mut counts = [0u64; BUCKETS.len()];
            for d in durations {
                let s = d.as_secs_f64();
                let i = BUCKETS.iter().position(|(_, up)| s < *up).unwrap_or(BUCKETS.len() - 1);
                counts[i] += 1;
            }
            let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
            let y = head + r as f64 * row_h;
            DurationRow {
                label,
                y: Px(y + 2.0),
                text_y: Px(y + 15.0),
                cells: counts
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Cell {
                        x: Px(label_w + cell_w * i as f64 + 1.0),
                        text_x: Px(label_w + cell_w * (i as f64 + 0.5)),
                        opacity: format!("{:.2}", if *n == 0 { 0.05 } else { 0.2 + 0.8 * (*n as f64 / max) }),
                        bucket: BUCKETS[i].0,
                        n: *n,
                    })
                    .collect(),
            }
        })
        .collect();
    Durations {
        w: Px(w),
        h: Px(h),
        cell_w: Px(cell_w - 2.0),
        cell_h: Px(row_h - 4.0),
        empty_y: Px(head + 14.0),
        heads,
        rows,
    }
    .render()
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_per_day_stacks_the_classes_of_each_day() {
        let today = 20_000;
        let svg = runs_per_day_svg(
            &[
                (today, ProblemClass::Ok, 3),
                (today, ProblemClass::NeedsFollowUp, 1),
                (today - 40, ProblemClass::Ok, 7_654_321), // outside the window
            ],
            today,
            14,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<title>").count(), 2, "one bar per class of the day: {svg}");
        assert!(svg.contains(">4</text>"), "the axis shows the largest day: {svg}");
        assert!(svg.contains(&format!("{}: 3 ", day_label(today))), "{svg}");
        assert!(!svg.contains("7654321"), "days outside the window are left out");
    }

    #[test]
    fn durations_bucket_each_run_and_escape_labels() {
        let svg = durations_svg(&[(
            "A <b>&",
            vec![
                Duration::from_millis(10),
                Duration::from_secs(30),
                Duration::from_secs(40),
            ],
        )]);
        assert!(
            svg.contains("A &#60;b&#62;&#38;") || svg.contains("A &lt;b&gt;&amp;"),
            "{svg}"
        );
        assert!(!svg.contains("<b>"));
        assert!(svg.contains(": 2</title>") && svg.contains(": 1</title>"), "{svg}");
        assert!(durations_svg(&[]).contains("No successful runs yet."));
    }

    #[test]
    fn pixels_show_one_decimal() {
        assert_eq!(Px(33.333_333).to_string(), "33.3");
        assert_eq!(Px(40.0).to_string(), "40");
    }
}
