//! Clean and robust error (docs/run-and-sweep.md#evaluation-protocol).
//!
//! Clean error: the fraction of examples whose prediction differs from the label. Robust error (paper): an example
//! counts as wrong if the clean **or** the faulty prediction is wrong, so
//! `RErr = (#clean-wrong + #(clean-right and faulty-wrong)) / N`. [`Evaluator`] computes the clean predictions once
//! and, per fault pattern, runs the faulty network only on the clean-right examples.
use ndarray::{Array4, ArrayView4, Axis};

use super::act_store::{ActivationStore, Reliable};
use super::{EngineError, Inference};
use crate::model::Model;

/// Clean evaluation of a network on a labelled set.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanEval {
    /// Predicted class per example.
    pub predictions: Vec<u16>,
    /// Number of examples.
    pub images: usize,
    /// Number of wrong predictions.
    pub wrong: usize,
}

impl CleanEval {
    /// Clean error in percent: `100 · wrong / images` (0 for an empty set).
    pub fn error_pct(&self) -> f64 {
        pct(self.wrong, self.images)
    }
}

/// Robust evaluation of one faulty weight set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RobustEval {
    pub images: usize,
    /// Examples wrong on the clean or on the faulty network.
    pub wrong: usize,
    /// Examples right on the clean network but wrong on the faulty one.
    pub flipped: usize,
}

impl RobustEval {
    /// Robust error in percent: `100 · wrong / images`.
    pub fn rerr_pct(&self) -> f64 {
        pct(self.wrong, self.images)
    }
}

fn pct(a: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * a as f64 / n as f64
    }
}

fn check_labels(labels: &[u8], n: usize, classes: usize) -> Result<(), EngineError> {
    if labels.len() != n {
        return Err(EngineError::Length {
            what: "labels".into(),
            expected: n,
            got: labels.len(),
        });
    }
    if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(EngineError::Label {
            index: i,
            label: labels[i],
            classes,
        });
    }
    Ok(())
}

/// Clean predictions and error of `net` on `inputs` (N x C x H x W, normalized) with `labels`.
pub fn evaluate(
    net: &dyn Inference,
    inputs: ArrayView4<f32>,
    labels: &[u8],
) -> Result<CleanEval, EngineError> {
    evaluate_with(net, inputs, labels, &|_| {})
}

/// [`evaluate`] with a progress callback (examples finished per call).
pub fn evaluate_with(
    net: &dyn Inference,
    inputs: ArrayView4<f32>,
    labels: &[u8],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<CleanEval, EngineError> {
    net.check_input(&inputs)?;
    check_labels(labels, inputs.shape()[0], net.classes())?;
    let predictions = net.predict_images(inputs, None, &Reliable, progress)?;
    let wrong = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p != **l as u16)
        .count();
    Ok(CleanEval {
        images: labels.len(),
        predictions,
        wrong,
    })
}

/// Reusable robust-error evaluator: clean predictions computed once; the clean-right examples gathered into one
/// contiguous batch that every faulty network is run on.
#[derive(Clone, Debug)]
pub struct Evaluator {
    clean: CleanEval,
    right_inputs: Array4<f32>,
    right_labels: Vec<u8>,
    /// Index in the evaluated split of each clean-right example (seeds the activation store's randomness).
    right_images: Vec<u64>,
}

impl Evaluator {
    /// Evaluates the clean network `net` once on `inputs`/`labels`.
    pub fn new(
        net: &dyn Inference,
        inputs: ArrayView4<f32>,
        labels: &[u8],
    ) -> Result<Evaluator, EngineError> {
        let clean = evaluate(net, inputs, labels)?;
        let right: Vec<usize> = (0..labels.len())
            .filter(|&i| clean.predictions[i] == labels[i] as u16)
            .collect();
        let right_inputs = inputs.select(Axis(0), &right);
        let right_labels = right.iter().map(|&i| labels[i]).collect();
        let right_images = right.iter().map(|&i| i as u64).collect();
        Ok(Evaluator {
            clean,
            right_inputs,
            right_labels,
            right_images,
        })
    }

    /// The clean evaluation.
    pub fn clean(&self) -> &CleanEval {
        &self.clean
    }

    /// Clean error in percent.
    pub fn clean_error_pct(&self) -> f64 {
        self.clean.error_pct()
    }

    /// Robust error of a faulty network (same graph, corrupted weights).
    pub fn robust(&self, faulty: &dyn Inference) -> Result<RobustEval, EngineError> {
        self.robust_store(faulty, &Reliable)
    }

    /// Robust error of a faulty network whose activation buffers read back through `store` (the integer
    /// datapath; docs/datapath.md). Only the clean-right examples run, each with its index in the split.
    pub fn robust_store(
        &self,
        faulty: &dyn Inference,
        store: &dyn ActivationStore,
    ) -> Result<RobustEval, EngineError> {
        let pred = faulty.predict_images(
            self.right_inputs.view(),
            Some(&self.right_images),
            store,
            &|_| {},
        )?;
        let flipped = pred
            .iter()
            .zip(&self.right_labels)
            .filter(|(p, l)| **p != **l as u16)
            .count();
        Ok(RobustEval {
            images: self.clean.images,
            wrong: self.clean.wrong + flipped,
            flipped,
        })
    }

    /// Robust error of the weights obtained by corrupting a copy of the model's memory image.
    ///
    /// `scratch` must hold the clean image (`model.memory_image()`) on entry and holds it again on return (only the
    /// changed tensors are copied back). `corrupt` modifies the bytes and returns the ids of the tensors it touched
    /// (`None` = unknown, all re-decoded). `net` ends with the clean weights again.
    pub fn robust_with<N, F>(
        &self,
        model: &Model,
        net: &mut N,
        scratch: &mut [u8],
        corrupt: F,
    ) -> Result<RobustEval, EngineError>
    where
        N: Inference,
        F: FnOnce(&mut [u8]) -> Option<Vec<usize>>,
    {
        let clean = model.memory_image();
        if scratch.len() != clean.len() {
            return Err(EngineError::Length {
                what: "scratch memory image bytes".into(),
                expected: clean.len(),
                got: scratch.len(),
            });
        }
        let changed = corrupt(scratch);
        net.set_weights_from_image(model, scratch, changed.as_deref())?;
        let result = self.robust(net);
        match &changed {
            Some(ids) => {
                for &id in ids {
                    let r = model.image_range(id);
                    scratch[r.clone()].copy_from_slice(&clean[r]);
                }
            }
            None => scratch.copy_from_slice(clean),
        }
        net.set_weights_from_image(model, clean, changed.as_deref())?;
        result
    }
}
