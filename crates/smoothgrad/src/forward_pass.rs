//! What one forward pass through the network does at its ReLUs and convolutions, and how passes
//! over the same inputs share their convolutions.

use std::cell::{Cell, RefCell};

use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::conv::{self, ConvLowering, ConvRoute};
use crate::relu::ReluKind;
use crate::replayed_conv::replayed;

/// One forward pass's choices: the ReLUs' backward rule, how the convolutions are computed, and
/// whether they are recorded for later passes over the same inputs or replayed from one.
pub struct ForwardPass<'a> {
    relu: ReluKind,
    lowering: ConvLowering,
    convolutions: Convolutions<'a>,
}

enum Convolutions<'a> {
    Computed,
    Recorded(&'a ConvRecord),
    /// The record, and how many of its outputs this pass has replayed.
    Replayed(&'a ConvRecord, Cell<usize>),
}

/// The convolutions' outputs of one pass, in the order the network ran them.
#[derive(Default)]
pub struct ConvRecord {
    outputs: RefCell<Vec<Tensor<4>>>,
}

impl ConvRecord {
    /// Drops the outputs it holds.
    pub fn clear(&self) {
        self.outputs.borrow_mut().clear();
    }
}

impl<'a> ForwardPass<'a> {
    /// A pass that computes its convolutions as `lowering` says and applies `relu` at every ReLU.
    pub fn new(relu: ReluKind, lowering: ConvLowering) -> Self {
        Self { relu, lowering, convolutions: Convolutions::Computed }
    }

    /// The same pass, keeping each convolution's output in `record` (without autodiff: the record
    /// holds values, not a tracked pass's graph, for tracked and untracked passes alike), in place
    /// of what it held.
    pub fn recording(self, record: &'a ConvRecord) -> Self {
        record.clear();
        Self { convolutions: Convolutions::Recorded(record), ..self }
    }

    /// The same pass, taking each convolution's output from `record`, made by a pass over the same
    /// input values: only the element-wise work is done again, and the backward is the
    /// convolutions' own ([`replayed`]).
    pub fn replaying(self, record: &'a ConvRecord) -> Self {
        Self { convolutions: Convolutions::Replayed(record, Cell::new(0)), ..self }
    }

    /// `conv` applied to `input`.
    pub fn conv(&self, conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
        match &self.convolutions {
            Convolutions::Computed => conv::forward(conv, input, self.lowering),
            Convolutions::Recorded(record) => {
                let output = conv::forward(conv, input, self.lowering);
                record.outputs.borrow_mut().push(output.clone().without_autodiff());
                output
            }
            Convolutions::Replayed(record, replayed_so_far) => {
                let index = replayed_so_far.replace(replayed_so_far.get() + 1);
                let recorded = record.outputs.borrow().get(index).cloned();
                let recorded = recorded.expect("a replaying pass runs the convolutions its record ran");
                let [batch, ..] = input.dims();
                let [recorded_batch, recorded_channels, ..] = recorded.dims();
                // A record of other inputs would replay silently wrong numbers.
                assert_eq!(
                    [recorded_batch, recorded_channels],
                    [batch, conv.weight.dims()[0]],
                    "convolution {index} replays a record of another batch or network"
                );
                let route = ConvRoute::of(conv, batch, self.lowering);
                replayed(conv, input, recorded, route)
            }
        }
    }

    /// The pass's ReLU applied to `input`.
    pub fn relu<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.relu.forward(input)
    }
}
