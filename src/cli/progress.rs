//! Terminal progress of a training run: one bar per epoch with loss, accuracy and rate, drawn
//! from the library's [`TrainObserver`] events.

use crate::train::{EpochLog, StepProgress, TrainObserver};

/// An indicatif bar per epoch (hidden when `on` is false).
pub struct TrainBar {
    on: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl TrainBar {
    pub fn new(on: bool) -> Self {
        TrainBar { on, bar: None }
    }
}

impl TrainObserver for TrainBar {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, steps: u64) {
        if !self.on {
            return;
        }
        let bar = indicatif::ProgressBar::new(steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}",
            )
            .expect("progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn step(&mut self, p: &StepProgress) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "loss {:.4} acc {:.1}% {:.0} img/s",
                p.loss,
                100.0 * p.acc,
                p.images_per_s
            ));
            bar.set_position(p.step);
        }
    }

    fn epoch_finished(&mut self, log: &EpochLog) {
        if let Some(bar) = self.bar.take() {
            bar.finish_with_message(format!(
                "loss {:.4} acc {:.1}% val {:.1}% {:.0} img/s",
                log.train_loss,
                100.0 * log.train_acc,
                100.0 * log.val_acc,
                log.images_per_s
            ));
        }
    }
}
