//! Bar charts drawn as SVG on the server: no script, no library, nothing
//! fetched. Labels go through maud, so they are escaped like any other text.

use maud::{html, Markup};

/// Horizontal bars, one per `(label, value)`, with the value printed at the
/// end of each bar; `unit` formats values.
pub(crate) fn bars(title: &str, series: &[(String, f64)], unit: fn(f64) -> String) -> Markup {
    const ROW: f64 = 22.0;
    const LABEL_W: f64 = 180.0;
    const BAR_W: f64 = 360.0;
    let height = ROW * series.len().max(1) as f64 + 8.0;
    let max = series.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    html! {
        figure.chart {
            figcaption { (title) }
            @if series.is_empty() {
                p.empty { "Nothing to draw yet." }
            } @else {
                svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(title)
                    viewBox=(format!("0 0 {} {height}", LABEL_W + BAR_W + 90.0))
                    width=(LABEL_W + BAR_W + 90.0) height=(height) {
                    @for (i, (label, value)) in series.iter().enumerate() {
                        @let y = 4.0 + ROW * i as f64;
                        @let w = if max > 0.0 { (value / max * BAR_W).max(1.0) } else { 1.0 };
                        text x=(LABEL_W - 6.0) y=(y + 15.0) text-anchor="end" { (label) }
                        rect x=(LABEL_W) y=(y + 3.0) width=(format!("{w:.1}")) height=(ROW - 6.0) rx="2" {}
                        text.value x=(LABEL_W + w + 6.0) y=(y + 15.0) { (unit(*value)) }
                    }
                }
            }
        }
    }
}

/// Values as whole numbers.
pub(crate) fn count(v: f64) -> String {
    format!("{}", v.round() as i64)
}

#[cfg(test)]
mod tests {
    // issue 17: chart labels are escaped like every other interpolated value
    #[test]
    fn a_chart_label_cannot_inject_markup() {
        let svg = super::bars(
            "t",
            &[("</text><script>x()</script>".into(), 3.0)],
            super::count,
        )
        .into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;/text&gt;&lt;script&gt;"), "{svg}");
    }
}
