//! The progress bar a long scan draws for a person watching stderr.

/// Whether a scan draws a progress bar: only for a person watching stderr,
/// and never beside machine-readable output (a script reading JSON or SARIF
/// wants quiet stderr too).
pub fn show_progress(stderr_is_terminal: bool, machine_output: bool) -> bool {
    stderr_is_terminal && !machine_output
}

/// A byte-counting progress bar on stderr, drawn after the walk has sized the scan.
#[derive(Default)]
pub struct Bar(Option<indicatif::ProgressBar>);

impl vault_scan::Progress for Bar {
    fn planned(&mut self, files: u64, bytes: u64) {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(bytes),
            indicatif::ProgressDrawTarget::stderr(),
        );
        // The template is a constant; it only fails to parse if edited badly.
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "scanning {files} files {wide_bar} {binary_bytes}/{binary_total_bytes} {eta}",
        ) {
            bar.set_style(style.with_key(
                "files",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{files}");
                },
            ));
        }
        self.0 = Some(bar);
    }

    fn scanned(&mut self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

impl Bar {
    /// Removes the bar so the findings print on a clean screen.
    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::show_progress;

    #[test]
    fn progress_only_on_a_terminal_and_never_with_machine_output() {
        assert!(show_progress(true, false));
        assert!(!show_progress(false, false));
        assert!(!show_progress(true, true));
        assert!(!show_progress(false, true));
    }
}
